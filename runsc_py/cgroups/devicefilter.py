"""linux.resources.devices as one device policy: the lines for the cgroup v1
devices controller, and the cgroup v2 eBPF device program.

config-linux.md, "Device allowlist": devices is "an array of entries, each
with the following structure": allow, type (a, b or c; unset is a), major
and minor (unset or -1 is every number), access (r, w, m). The runtime
first denies everything, applies the entries in order, then allows the
devices every container has (runc's default list, DEFAULT_RULES) and the
ones linux.devices creates: `sequence()`.

What that sequence means is what the v1 devices controller makes of it
(security/device_cgroup.c), on both versions, so a container may open the
same devices on a v1, hybrid or v2 host. `Policy` is that controller's
state: a default (allow or deny everything) and a list of exceptions, each
a (type, major, minor) with access bits. An `a` rule resets the state to its
default; any other rule adds its bits to the exception of exactly its
numbers, or takes them away from exactly that exception: the kernel never
narrows a wider exception, so a rule that would punch a hole in a wildcard
(deny c 1:3 after allow c *:*) would be silently ignored. Like runc, such a
rule is refused instead.

A request (open for r/w, mknod for m) is decided like the kernel decides:
with a default deny, it is allowed if one exception has every requested
bit; with a default allow, it is denied if one exception has any of them.
The v2 program is that decision, one block per exception (see `program`).
"""

import struct
import sys
import time

from ..errors import Failure

FIELD = "linux.resources.devices"

# struct bpf_cgroup_dev_ctx (include/uapi/linux/bpf.h): u32 access_type
# ((BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*), u32 major, u32 minor.
ACCESS = {"m": 1, "r": 2, "w": 4}          # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
RWM = 7
TYPES = {"b": 1, "c": 2}                   # BPF_DEVCG_DEV_BLOCK, _CHAR
MAX_NUMBER = (1 << 32) - 2                 # u32 in the kernel; ~0 is its wildcard


class Rule:
    """One entry: allow or deny; kind a, b or c; major/minor None for every number."""

    __slots__ = ("allow", "kind", "major", "minor", "access", "field")

    def __init__(self, allow, kind, major=None, minor=None, access=RWM, field=FIELD):
        self.allow, self.kind, self.major, self.minor = allow, kind, major, minor
        self.access, self.field = access, field

    def line(self):
        """As written to devices.allow / devices.deny: `c 1:3 rwm`, `a`."""
        if self.kind == "a":
            return "a"
        return f"{self.kind} {_number(self.major)}:{_number(self.minor)} {access_text(self.access)}"

    def __repr__(self):
        return f"{'allow' if self.allow else 'deny'} {self.line()}"


def _number(n):
    return "*" if n is None else str(n)


def access_text(bits):
    return "".join(c for c in "rwm" if bits & ACCESS[c])


def parse(entry, field):
    """A linux.resources.devices entry (validated by specs.config) as a Rule."""
    kind = entry.get("type") or "a"

    def number(name):
        value = entry.get(name)
        if value is None or value < 0:
            return None
        if value > MAX_NUMBER:
            raise Failure(f"{field}.{name}: {value} is not a device number (at most {MAX_NUMBER})")
        return value
    access = 0
    for c in entry.get("access") or "rwm":
        access |= ACCESS[c]
    return Rule(bool(entry.get("allow")), kind, number("major"), number("minor"), access, field)


def _default(text, name):
    kind, numbers, access = text.split()
    major, minor = (None if n == "*" else int(n) for n in numbers.split(":"))
    return Rule(True, kind, major, minor, sum(ACCESS[c] for c in access), f"{FIELD} (default rule {text}: {name})")


# runc's list: mknod of anything (opening it is another matter), the /dev
# nodes every container gets, the pty devices, the console; /dev/net/tun
# stays because engines rely on it (runc restored it after removing it in
# 1.2.0-rc1).
DEFAULT_RULES = tuple(_default(text, name) for text, name in (
    ("c *:* m", "mknod"), ("b *:* m", "mknod"),
    ("c 1:3 rwm", "/dev/null"), ("c 1:5 rwm", "/dev/zero"), ("c 1:7 rwm", "/dev/full"),
    ("c 1:8 rwm", "/dev/random"), ("c 1:9 rwm", "/dev/urandom"),
    ("c 5:0 rwm", "/dev/tty"), ("c 5:1 rwm", "/dev/console"), ("c 5:2 rwm", "/dev/ptmx"),
    ("c 136:* rwm", "/dev/pts/*"), ("c 10:200 rwm", "/dev/net/tun")))


def sequence(entries, devices=()):
    """The rules the runtime applies, in order: deny everything, the spec's
    entries, the defaults, then rwm for each device of linux.devices (the
    container has them)."""
    rules = [Rule(False, "a", field=FIELD)]
    rules += [parse(entry, f"{FIELD}[{i}]") for i, entry in enumerate(entries or ())]
    rules += DEFAULT_RULES
    for i, dev in enumerate(devices):
        if dev.type in ("c", "b", "u") and dev.major is not None:
            rules.append(Rule(True, "b" if dev.type == "b" else "c", dev.major, dev.minor, RWM,
                              f"linux.devices[{i}]"))
    return rules


# -- the devices controller's state ------------------------------------------------------------

class Policy:
    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow=False, exceptions=None):
        self.default_allow = default_allow
        self.exceptions = exceptions or {}   # {(kind, major, minor): access bits}, in order of creation

    def apply(self, rule, refuse_holes=True):
        """The kernel's handling of a write of `rule`; `refuse_holes`: a
        spec's rule the kernel would partly ignore is refused (a
        transition's writes are exact by construction)."""
        if rule.kind == "a":
            self.default_allow, self.exceptions = rule.allow, {}
            return
        key = (rule.kind, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions[key] = self.exceptions.get(key, 0) | rule.access
            return
        if refuse_holes:
            self._refuse_hole(rule, key)
        left = self.exceptions.get(key, 0) & ~rule.access
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def _refuse_hole(self, rule, key):
        kind, major, minor = key
        for wider in ((kind, None, minor), (kind, major, None), (kind, None, None)):
            bits = self.exceptions.get(wider, 0) & rule.access if wider != key else 0
            if bits:
                outer = Rule(not rule.allow, kind, wider[1], wider[2], self.exceptions[wider])
                raise Failure(f"{rule.field}: {rule!r} would be ignored: it lies inside the wider rule "
                              f"{outer!r}, and a device cgroup rule cannot be narrowed by a later one "
                              "(write the narrower rules instead of the wildcard)")

    def allows_all(self):
        return self.default_allow and not self.exceptions

    def allows(self, kind, major, minor, access):
        """The kernel's decision for a request of `access` bits."""
        for (k, ma, mi), bits in self.exceptions.items():
            if k == kind and ma in (None, major) and mi in (None, minor):
                if self.default_allow and access & bits:
                    return False
                if not self.default_allow and not access & ~bits:
                    return True
        return self.default_allow

    def transition(self, target):
        """The v1 writes that turn a cgroup in this state into `target`:
        only the bits that change, so the devices both allow stay usable
        throughout; a change of default needs the `a` rule, which clears
        the exceptions first (runc's order too)."""
        rules, old = [], self.exceptions
        if self.default_allow != target.default_allow:
            rules.append(Rule(target.default_allow, "a"))
            old = {}
        for key, bits in old.items():
            dropped = bits & ~target.exceptions.get(key, 0)
            if dropped:
                rules.append(Rule(target.default_allow, *key, dropped))
        for key, bits in target.exceptions.items():
            gained = bits & ~old.get(key, 0)
            if gained:
                rules.append(Rule(not target.default_allow, *key, gained))
        return rules


def emulate(rules):
    """The Policy the devices controller ends in after `rules`; a rule it
    would ignore is refused (Failure naming the rule's field)."""
    policy = Policy()
    for rule in rules:
        policy.apply(rule)
    return policy


# -- the cgroup v2 program ---------------------------------------------------------------------

# struct bpf_insn opcodes (include/uapi/linux/bpf_common.h, bpf.h).
_LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W:   dst = *(u32 *)(src + off)
_MOV32_X = 0xbc      # BPF_ALU | BPF_MOV | BPF_X:   w(dst) = w(src)
_MOV32_K = 0xb4      # BPF_ALU | BPF_MOV | BPF_K:   w(dst) = imm
_AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K:   w(dst) &= imm
_RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K:   w(dst) >>= imm
_JNE32_K = 0x56      # BPF_JMP32 | BPF_JNE | BPF_K: if w(dst) != imm: pc += off
_JEQ32_K = 0x16      # BPF_JMP32 | BPF_JEQ | BPF_K: if w(dst) == imm: pc += off
_EXIT = 0x95         # BPF_JMP | BPF_EXIT:          return r0
_NEXT = object()     # a jump to the next block, resolved once the block is built


def _insn(code, dst=0, src=0, off=0, imm=0):
    regs = dst | src << 4 if sys.byteorder == "little" else dst << 4 | src
    if imm > 0x7fffffff:
        imm -= 1 << 32  # a u32 compared by a JMP32: the same 32 bits
    return struct.pack("=BBhi", code, regs, off, imm)


def program(policy):
    """The device program (bytes of struct bpf_insn) deciding like `policy`.

    r1 is the context; the prologue puts the device type in w2, the
    requested access in w3, major in w4, minor in w5. Each exception is
    one block: a comparison per number that is not a wildcard, then the
    access test (with a default deny: no requested bit outside the
    exception's, skipped for rwm; with a default allow: some requested
    bit inside it), then `return` the exception's verdict. A failed test
    jumps to the next block; after the last, the default. Compares are
    32-bit (JMP32, Linux 5.1): device numbers are u32. The verifier wants
    r0 in [0, 1] at exit: it is always a constant."""
    verdict = 0 if policy.default_allow else 1
    code = [(_LDX_W, 2, 1, 0, 0), (_MOV32_X, 3, 2, 0, 0), (_AND32_K, 2, 0, 0, 0xffff), (_RSH32_K, 3, 0, 0, 16),
            (_LDX_W, 4, 1, 4, 0), (_LDX_W, 5, 1, 8, 0)]
    for (kind, major, minor), bits in policy.exceptions.items():
        block = [(_JNE32_K, 2, 0, _NEXT, TYPES[kind])]
        if major is not None:
            block.append((_JNE32_K, 4, 0, _NEXT, major))
        if minor is not None:
            block.append((_JNE32_K, 5, 0, _NEXT, minor))
        if policy.default_allow:
            block += [(_MOV32_X, 1, 3, 0, 0), (_AND32_K, 1, 0, 0, bits), (_JEQ32_K, 1, 0, _NEXT, 0)]
        elif bits != RWM:
            block += [(_MOV32_X, 1, 3, 0, 0), (_AND32_K, 1, 0, 0, RWM & ~bits), (_JNE32_K, 1, 0, _NEXT, 0)]
        block += [(_MOV32_K, 0, 0, 0, verdict), (_EXIT, 0, 0, 0, 0)]
        code += [(c, d, s, len(block) - i - 1 if off is _NEXT else off, imm)
                 for i, (c, d, s, off, imm) in enumerate(block)]
    code += [(_MOV32_K, 0, 0, 0, 1 if policy.default_allow else 0), (_EXIT, 0, 0, 0, 0)]
    return b"".join(_insn(*i) for i in code)


class Program:
    """A program loaded into the kernel, to be installed on a cgroup."""

    __slots__ = ("insns", "fd", "load_seconds")

    def __init__(self, policy):
        self.insns = program(policy)
        self.fd = None
        self.load_seconds = None

    def __len__(self):
        return len(self.insns) // 8

    def load(self):
        from ..linux import bpf
        started = time.monotonic()
        self.fd = bpf.load_cgroup_device(self.insns)
        self.load_seconds = time.monotonic() - started
        return self

    def close(self):
        if self.fd is not None:
            import os
            os.close(self.fd)
            self.fd = None


def install(path, prog):
    """Make `prog` the device program of the cgroup at `path`: attached
    (BPF_F_ALLOW_MULTI) before the ones attached there so far are
    detached, so the cgroup is never without a filter; while both are on,
    a device must pass both (the kernel runs every program of the cgroup)."""
    try:
        _replace(path, prog.fd)
    finally:
        prog.close()


def uninstall(path):
    """Detach every device program of the cgroup: its policy allows all."""
    _replace(path, None)


def _replace(path, new_fd):
    import errno
    import os
    from ..linux import bpf
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = bpf.attached(fd)
        if new_fd is not None:
            bpf.attach(fd, new_fd)
        for prog_id in old:
            try:
                old_fd = bpf.fd_by_id(prog_id)
            except FileNotFoundError:
                continue  # detached meanwhile
            try:
                bpf.detach(fd, old_fd)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
            finally:
                os.close(old_fd)
    finally:
        os.close(fd)


def why_not(err):
    """What a failed load or attach means on this host, for the refusal."""
    import errno
    hint = {errno.EPERM: "it needs CAP_BPF or CAP_SYS_ADMIN in the host's user namespace",
            errno.EINVAL: "this kernel has no cgroup BPF (CONFIG_CGROUP_BPF)",
            errno.ENOSYS: "this kernel has no bpf(2)"}.get(err.errno)
    text = (err.strerror or str(err)).lower()
    return f"{text} ({hint})" if hint else text
