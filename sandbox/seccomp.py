"""linux.seccomp compiled with libseccomp (through pyseccomp, a thin ctypes
binding over the system's libseccomp2: no BPF is written by hand here).

The filter is built in the runtime before any process is forked, so a
broken profile fails `create` before anything exists; the workload child
only loads it (seccomp_load), as the last step before execve.

Semantics follow runtime-spec config-linux.md "Seccomp" and runc where the
spec is silent:
- a rule whose action equals the default action is skipped (libseccomp
  refuses it, and it changes nothing);
- syscall names this kernel/libseccomp does not know are skipped;
- `errnoRet` defaults to EPERM for SCMP_ACT_ERRNO and SCMP_ACT_TRACE; with
  another action it is an error (the spec: "When the action doesn't
  support an errno, the runtime MUST print and error and fail"), as is an
  errno the kernel cannot return (above MAX_ERRNO, 4095);
- argument conditions on distinct indexes are ANDed in one rule; when an
  index repeats, each condition becomes a rule of its own (ORed), because
  libseccomp cannot AND two conditions on one argument;
- no_new_privs is *not* set by loading the filter: that is
  process.noNewPrivileges's decision (libseccomp would set it by default).
"""

import errno

from runsc_py.errors import Failure, Unsupported, log
from specs.names import SECCOMP_FLAGS as KNOWN_FLAGS

# AUDIT_ARCH_* values: ELF machine | 64-bit | little-endian (linux/audit.h).
_LE, _64 = 0x40000000, 0x80000000
ARCHES = {
    "SCMP_ARCH_X86": 3 | _LE, "SCMP_ARCH_X86_64": 62 | _64 | _LE, "SCMP_ARCH_X32": 62 | _LE,
    "SCMP_ARCH_ARM": 40 | _LE, "SCMP_ARCH_AARCH64": 183 | _64 | _LE,
    "SCMP_ARCH_MIPS": 8, "SCMP_ARCH_MIPS64": 8 | _64, "SCMP_ARCH_MIPS64N32": 8 | _64 | 0x20000000,
    "SCMP_ARCH_MIPSEL": 8 | _LE, "SCMP_ARCH_MIPSEL64": 8 | _64 | _LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _64 | _LE | 0x20000000,
    "SCMP_ARCH_PPC": 20, "SCMP_ARCH_PPC64": 21 | _64, "SCMP_ARCH_PPC64LE": 21 | _64 | _LE,
    "SCMP_ARCH_S390": 22, "SCMP_ARCH_S390X": 22 | _64, "SCMP_ARCH_PARISC": 15,
    "SCMP_ARCH_PARISC64": 15 | _64, "SCMP_ARCH_RISCV64": 243 | _64 | _LE,
    "SCMP_ARCH_LOONGARCH64": 258 | _64 | _LE, "SCMP_ARCH_M68K": 4, "SCMP_ARCH_SH": 42 | _LE,
    "SCMP_ARCH_SHEB": 42,
}

# SECCOMP_FILTER_FLAG_* -> libseccomp filter attribute (enum scmp_filter_attr).
_ATTR_NNP = 3
FLAG_ATTRS = {"SECCOMP_FILTER_FLAG_TSYNC": 4, "SECCOMP_FILTER_FLAG_LOG": 6,
              "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7}

_NR_SCMP_ERROR = -1
_MAX_ERRNO = 4095      # include/linux/err.h: the kernel clamps SECCOMP_RET_ERRNO data to it
_MAX_TRACE_DATA = 0xFFFF  # SECCOMP_RET_DATA, what the tracer receives
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


def _lib():
    try:
        import pyseccomp
    except (ImportError, OSError) as e:
        raise Failure(f"linux.seccomp: libseccomp is not available on this host ({e})") from None
    return pyseccomp


def preload():
    """Load libseccomp now (see runsc_py.container.create._preload_for_members);
    a host without it can still run pods whose members use no seccomp."""
    try:
        _lib()
    except Failure:
        pass


def action(sc, name, errno_ret, where="linux.seccomp.defaultErrnoRet"):
    """The libseccomp action value of an SCMP_ACT_* name; `where` names the
    errno field in errors."""
    limit = {"SCMP_ACT_ERRNO": _MAX_ERRNO, "SCMP_ACT_TRACE": _MAX_TRACE_DATA}.get(name)
    if errno_ret is not None:
        if limit is None:
            raise Failure(f"{where}: {name} takes no errno")
        if errno_ret > limit:
            raise Failure(f"{where}: {errno_ret} is out of range for {name} (at most {limit})")
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    return {"SCMP_ACT_KILL": sc.KILL, "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS, "SCMP_ACT_TRAP": sc.TRAP,
            "SCMP_ACT_ALLOW": sc.ALLOW, "SCMP_ACT_LOG": sc.LOG, "SCMP_ACT_NOTIFY": sc.NOTIFY}[name]


def supported_arches():
    """The SCMP_ARCH_* names this host's libseccomp can add to a filter
    (which always holds the native architecture: libseccomp refuses one of
    the other byte order). Each is probed on a filter of its own."""
    sc = _lib()
    out = []
    for name, arch in ARCHES.items():
        probe = sc.SyscallFilter(sc.ALLOW)
        try:
            if not probe.exist_arch(arch):
                probe.add_arch(arch)
            out.append(name)
        except OSError:
            continue
    return out


def supported_flags():
    """The SECCOMP_FILTER_FLAG_* names this host's libseccomp and kernel
    can set (libseccomp refuses an attribute the kernel lacks)."""
    sc = _lib()
    out = []
    for name, attr in FLAG_ATTRS.items():
        try:
            sc.SyscallFilter(sc.ALLOW).set_attr(attr, 1)
            out.append(name)
        except OSError:
            continue
    return out


class Filter:
    """A compiled filter, ready to load in the workload."""

    def __init__(self, lib, context, wants_listener):
        self.lib = lib
        self.context = context
        self.wants_listener = wants_listener

    def load(self):
        """Load it; returns the notification fd when a rule says
        SCMP_ACT_NOTIFY (libseccomp asks the kernel for a listener then)."""
        self.context.load()
        if not self.wants_listener:
            return None
        # pyseccomp has no public accessor for the listener fd; the library
        # handle it wraps does.
        fd = self.lib._libseccomp.seccomp_notify_fd(self.context._filter)
        if fd < 0:
            raise OSError(-fd, "seccomp_notify_fd failed")
        return fd


def build(profile: dict) -> Filter:
    sc = _lib()
    default = action(sc, profile["defaultAction"], profile.get("defaultErrnoRet"))
    try:
        context = sc.SyscallFilter(default)
        context.set_attr(_ATTR_NNP, 0)
        _add_arches(context, profile.get("architectures") or ())
        _set_flags(context, profile.get("flags") or ())
        wants_listener = False
        for index, rule in enumerate(profile.get("syscalls") or ()):
            act = action(sc, rule["action"], rule.get("errnoRet"), f"linux.seccomp.syscalls[{index}].errnoRet")
            if act == default:
                continue
            wants_listener |= rule["action"] == "SCMP_ACT_NOTIFY"
            for name in rule["names"]:
                _add_rule(sc, context, act, name, rule.get("args") or (), index)
    except OSError as e:
        raise Failure(f"linux.seccomp: {(e.strerror or str(e)).lower()}") from None
    return Filter(sc, context, wants_listener)


def _add_arches(context, names):
    for name in names:
        arch = ARCHES[name]
        try:
            if not context.exist_arch(arch):
                context.add_arch(arch)
        except OSError:
            raise Unsupported(f"linux.seccomp.architectures: {name} (this host's libseccomp)") from None


def _set_flags(context, flags):
    for flag in flags:
        attr = FLAG_ATTRS.get(flag)
        if attr is None:
            raise Unsupported(f"linux.seccomp.flags: {flag}")
        try:
            context.set_attr(attr, 1)
        except OSError:
            raise Unsupported(f"linux.seccomp.flags: {flag} (this host's libseccomp or kernel)") from None


def _add_rule(sc, context, act, name, args, index):
    number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    if number == _NR_SCMP_ERROR:  # other negative numbers are libseccomp's pseudo-syscalls
        log.debug(f"linux.seccomp.syscalls[{index}]: skipping unknown syscall {name!r}")
        return
    conditions = [sc.Arg(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0)) for a in args]
    indexes = [a["index"] for a in args]
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for group in groups:
        try:
            context.add_rule(act, number, *group)
        except OSError as e:
            why = ("another rule gives it a different action for the same arguments" if e.errno == errno.EEXIST
                   else (e.strerror or str(e)).lower())
            raise Failure(f"linux.seccomp.syscalls[{index}] ({name}): {why}") from None
