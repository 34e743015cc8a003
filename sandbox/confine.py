"""Confinement of a container process: what `process` and `linux` say about
the process itself, applied between fork and execve.

`check` refuses, before anything is created, what this host cannot apply
(a security field silently ignored is worse than a refusal). `prepare`
turns the spec into numbers and a compiled seccomp filter in the runtime,
so that the forked child, already inside the container where the host's
Python library is out of reach, only makes system calls. `apply` runs in
that child, in runc's order:

    personality, rlimits, oom_score_adj, I/O priority, scheduler, initial
    CPU affinity, LSM exec labels  (while still privileged)
    [seccomp here if no_new_privs is not set: loading it then needs
     CAP_SYS_ADMIN, which the capability drop below may remove]
    bounding set -> keep-caps -> groups, gid, uid -> capset -> ambient
    umask, cwd (again, if it was not reachable as root), final CPU affinity
    no_new_privs -> seccomp (the last step before execve, so that the
    profile need not allow the runtime's own system calls)

Capabilities follow runc: a missing `process.capabilities`, or a missing
set in it, is an empty set (the process keeps no capability it was not
given). An unset umask is the caller's: "If unspecified, the umask should
not be changed from the calling process' umask" (runc sets 0022 instead).
"""

import errno
import os
import resource

import prctl

from runsc_py.errors import Failure, Unsupported, log
from runsc_py.linux import process as proc_attrs
from specs.names import CAPABILITIES, CAPABILITY_LIST, RLIMITS

CAP_SYS_RESOURCE = CAPABILITIES["CAP_SYS_RESOURCE"]
RLIM_INFINITY = (1 << 64) - 1
CAP_KINDS = ("bounding", "effective", "permitted", "inheritable", "ambient")

_IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_IDLE": 5,
                   "SCHED_DEADLINE": 6}
_SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
                "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
                "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
_PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}

# Fields of runtime-spec 1.3 this runtime does not implement: refused by name.
_UNSUPPORTED_LINUX = {"intelRdt": "linux.intelRdt (Intel RDT)", "memoryPolicy": "linux.memoryPolicy",
                      "netDevices": "linux.netDevices"}

# runtime-spec config-linux.md, sysctl: only sysctls of namespaces the
# container has its own of may be set (runc's rule): IPC sysctls need a new
# ipc namespace, net.* a new network namespace, hostname/domainname a uts one.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled():
    return os.path.exists("/sys/fs/selinux/enforce")


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITY_LIST) - 1


def check(process, linux):
    """Refuse what cannot be applied here, naming the field."""
    if process.apparmor_profile and not apparmor_enabled():
        raise Failure(f"process.apparmorProfile {process.apparmor_profile!r}: AppArmor is not enabled on this host")
    if process.selinux_label and not selinux_enabled():
        raise Failure(f"process.selinuxLabel {process.selinux_label!r}: SELinux is not enabled on this host")
    if linux.mount_label and not selinux_enabled():
        raise Failure(f"linux.mountLabel {linux.mount_label!r}: SELinux is not enabled on this host")
    if process.scheduler and process.scheduler["policy"] == "SCHED_ISO":
        raise Unsupported("process.scheduler.policy SCHED_ISO (Linux has no such policy)")
    if linux.personality and linux.personality.get("flags"):
        raise Unsupported("linux.personality.flags")
    for key, what in _UNSUPPORTED_LINUX.items():
        if linux.raw.get(key) is not None:
            raise Unsupported(what)
    check_capabilities(process.capabilities, linux)
    check_rlimits(process.rlimits)
    check_sysctls(linux)


def _names(mask):
    return ", ".join(CAPABILITY_LIST[n] for n in range(len(CAPABILITY_LIST)) if mask >> n & 1)


def check_capabilities(caps, linux):
    """What capset(2) would refuse with a bare EPERM at start, refused at
    create with the reason. capset(2): "the new effective set must be a
    subset of the new permitted set", the new inheritable set must be in
    the bounding set (or already inheritable), and the permitted set can
    only shrink. A new or joined user namespace gives the process every
    capability in it; otherwise it has at most the runtime's own."""
    sets = Capabilities(caps, last_cap())
    for kind, limit in (("effective", "permitted"), ("inheritable", "bounding")):
        extra = getattr(sets, kind) & ~getattr(sets, limit)
        if extra:
            raise Failure(f"process.capabilities.{kind}: {_names(extra)} not in process.capabilities.{limit} "
                          f"(the kernel allows no {kind} capability outside the {limit} set)")
    if any(n.type == "user" for n in linux.namespaces):
        return
    own = proc_attrs.own_capabilities()
    for kind, available in (("permitted", own["permitted"]), ("inheritable", own["bounding"] | own["inheritable"])):
        lacking = getattr(sets, kind) & ~available
        if lacking:
            raise Failure(f"process.capabilities.{kind}: {_names(lacking)}: the runtime itself does not have "
                          f"{'this capability' if lacking & (lacking - 1) == 0 else 'these capabilities'}")
    missing = sets.bounding & ~own["bounding"]
    if missing:
        log.warning(f"process.capabilities.bounding: {_names(missing)} not in the runtime's own bounding set: "
                    f"the container cannot have them either")


def check_rlimits(rlimits):
    """Raising a hard limit needs CAP_SYS_RESOURCE in the initial user
    namespace (setrlimit(2)); without it, a hard limit above the runtime's
    own (which the container process inherits) is refused here, at create."""
    if _can_raise_hard_limits():
        return
    for limit in rlimits:
        _, current = resource.getrlimit(RLIMITS[limit.type])
        current = RLIM_INFINITY if current == resource.RLIM_INFINITY else current
        if limit.hard > current:
            raise Failure(f"process.rlimits {limit.type}: hard limit {limit.hard} is above the runtime's own "
                          f"({current}); raising it needs CAP_SYS_RESOURCE, which the runtime lacks")


def _can_raise_hard_limits():
    if not proc_attrs.own_capabilities()["effective"] >> CAP_SYS_RESOURCE & 1:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]  # the initial user namespace
    except OSError:
        return False


def check_sysctls(linux):
    """runc's rule (config-linux.md leaves it to the runtime): a namespaced
    sysctl is set only in a namespace of that kind that is the container's
    own: a new one, or one joined by path that is not the runtime's own
    (same inode as /proc/self/ns/<kind>: joining it would change the host's
    value). A kind left out of linux.namespaces is the runtime's too."""
    for key in linux.sysctl:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            kind = "ipc"
        elif key.startswith("net."):
            kind = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            kind = "uts"
        else:
            raise Failure(f"linux.sysctl {key!r}: not a namespaced sysctl; setting it would change the host")
        if _is_runtimes_namespace(linux.namespaces, kind):
            raise Failure(f'linux.sysctl: sysctl "{key}" not allowed in host {kind} namespace')


_NS_FILES = {"ipc": "ipc", "network": "net", "uts": "uts"}


def _is_runtimes_namespace(namespaces, kind):
    """Whether the container's namespace of `kind` is the runtime's own."""
    entry = next((n for n in namespaces if n.type == kind), None)
    if entry is None:
        return True  # not in the list: the container shares the runtime's
    if not entry.path:
        return False  # a new one
    try:
        joined = os.stat(entry.path)
        own = os.stat(f"/proc/self/ns/{_NS_FILES[kind]}")
    except OSError:
        return False  # joining it fails, naming the path, before any sysctl is written
    return (joined.st_dev, joined.st_ino) == (own.st_dev, own.st_ino)


def _cpu_set(text):
    cpus = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class Capabilities:
    """Bit masks of the five sets (a set not given is empty, as with runc),
    limited to the capabilities this kernel knows (numbers up to `top`,
    /proc/sys/kernel/cap_last_cap); the others are in `unknown`."""

    def __init__(self, caps, top):
        self.top = top
        self.unknown = set()
        for kind in CAP_KINDS:
            mask = 0
            for name in (getattr(caps, kind) if caps is not None else None) or ():
                number = CAPABILITIES[name]
                if number > top:
                    self.unknown.add(name)
                else:
                    mask |= 1 << number
            setattr(self, kind, mask)

    def unraisable_ambient(self):
        """Ambient capabilities the kernel refuses to raise: "the
        capability must already be present in both the permitted and the
        inheritable sets of the process" (prctl(2), PR_CAP_AMBIENT_RAISE)."""
        return self.ambient & ~(self.permitted & self.inheritable)

    def drop_bounding(self):
        for number in range(self.top + 1):
            if not self.bounding & (1 << number):
                prctl.capbset_drop(number)

    def set(self):
        proc_attrs.capset(self.effective, self.permitted, self.inheritable)
        proc_attrs.ambient_clear()
        for number in range(self.top + 1):
            if self.ambient & (1 << number):
                proc_attrs.ambient_raise(number)


class Confinement:
    """Everything `apply` needs, computed before fork."""

    def __init__(self, process, linux):
        user = process.user
        self.uid, self.gid = user.uid, user.gid
        self.groups = list(user.additional_gids)
        self.umask = user.umask
        self.cwd = process.cwd
        self.rlimits = [(RLIMITS[r.type], r.soft, r.hard, r.type) for r in process.rlimits]
        self.no_new_privs = process.no_new_privileges
        self.oom_score_adj = process.oom_score_adj
        self.caps = Capabilities(process.capabilities, last_cap())
        for name in sorted(self.caps.unknown):
            log.warning(f"capability {name} is not known to this kernel: skipped")
        unraisable = self.caps.unraisable_ambient()
        if unraisable:
            # runc and crun skip these too: an ambient capability without its
            # permitted and inheritable bits grants nothing.
            log.warning(f"process.capabilities.ambient: {_names(unraisable)} not raised: an ambient capability "
                        f"must also be permitted and inheritable")
            self.caps.ambient &= ~unraisable
        self.personality = _PERSONALITIES[linux.personality["domain"]] if linux.personality else None
        prio = process.io_priority
        self.io_priority = (_IOPRIO_CLASSES[prio["class"]], prio.get("priority", 0)) if prio else None
        self.scheduler = _scheduler(process.scheduler) if process.scheduler else None
        affinity = process.exec_cpu_affinity or {}
        self.cpus_initial = _cpu_set(affinity["initial"]) if affinity.get("initial") else None
        self.cpus_final = _cpu_set(affinity["final"]) if affinity.get("final") else None
        self.apparmor = process.apparmor_profile or None
        self.selinux = process.selinux_label or None
        self.seccomp = None
        if linux.seccomp is not None:
            from . import seccomp
            self.seccomp = seccomp.build(linux.seccomp)

    def apply(self, cwd_entered=True):
        """In the child, just before execve. Returns the seccomp listener fd
        if the filter has SCMP_ACT_NOTIFY rules, else None. `cwd_entered`:
        whether the cwd could be entered before the user switch."""
        self._process_attributes()
        listener = None
        if self.seccomp is not None and not self.no_new_privs:
            listener = self._load_seccomp()
        _step("process.capabilities.bounding", self.caps.drop_bounding)
        self._switch_user()
        _step("process.capabilities", self.caps.set)
        if self.umask is not None:
            os.umask(self.umask)
        if not cwd_entered:
            # runc's rule: the cwd is entered as root first (it may be
            # reachable only so); if that was refused, it must work as the user.
            _step(f"chdir to cwd ({self.cwd!r}) set in config.json", os.chdir, self.cwd)
        if self.cpus_final is not None:
            _step("process.execCPUAffinity.final", os.sched_setaffinity, 0, self.cpus_final)
        if self.no_new_privs:
            prctl.set_no_new_privs(1)
            if self.seccomp is not None:
                listener = self._load_seccomp()
        return listener

    def _process_attributes(self):
        if self.personality is not None:
            _step("linux.personality", proc_attrs.personality, self.personality)
        for number, soft, hard, name in self.rlimits:
            _step(f"process.rlimits {name}", proc_attrs.setrlimit, number, soft, hard,
                  hint={errno.EPERM: "raising a hard limit needs CAP_SYS_RESOURCE"})
        if self.oom_score_adj is not None:
            _step(f"process.oomScoreAdj {self.oom_score_adj}", write_proc_file, "/proc/self/oom_score_adj",
                  str(self.oom_score_adj),
                  hint={errno.EACCES: "a value below the runtime's own needs CAP_SYS_RESOURCE"})
        if self.io_priority is not None:
            _step("process.ioPriority", proc_attrs.ioprio_set, *self.io_priority)
        if self.scheduler is not None:
            _step("process.scheduler", proc_attrs.sched_setattr, **self.scheduler)
        if self.cpus_initial is not None:
            _step("process.execCPUAffinity.initial", os.sched_setaffinity, 0, self.cpus_initial)
        if self.apparmor:
            _step("process.apparmorProfile", _apparmor_exec, self.apparmor)
        if self.selinux:
            _step("process.selinuxLabel", write_proc_file, "/proc/self/attr/exec", self.selinux)

    def _switch_user(self):
        # Keep the permitted set across the uid change; capset then sets
        # exactly what the spec asks for.
        prctl.set_keepcaps(1)
        _step("process.user.additionalGids", os.setgroups, self.groups)
        _step("process.user.gid", os.setresgid, self.gid, self.gid, self.gid)
        _step("process.user.uid", os.setresuid, self.uid, self.uid, self.uid)
        prctl.set_keepcaps(0)

    def _load_seccomp(self):
        return _step("linux.seccomp", self.seccomp.load)


def _scheduler(sched):
    flags = 0
    for name in sched.get("flags") or ():
        flags |= _SCHED_FLAGS[name]
    return {"policy": _SCHED_POLICIES[sched["policy"]], "flags": flags, "nice": sched.get("nice", 0),
            "priority": sched.get("priority", 0), "runtime": sched.get("runtime", 0),
            "deadline": sched.get("deadline", 0), "period": sched.get("period", 0)}


PROC_SUPER_MAGIC = 0x9FA0


def write_proc_file(path, text):
    """Write a /proc/self file, refusing one that is not on procfs: the
    image may make /proc a symlink into a volume (CVE-2019-16884), where
    the setting would be written to a plain file and silently not apply.
    O_NONBLOCK: a FIFO planted there fails instead of blocking."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if _fs_type(fd) != PROC_SUPER_MAGIC:
            raise OSError(errno.EXDEV, "not on procfs: the container's /proc is not a proc mount", path)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _fs_type(fd):
    """f_type of fstatfs(2): the first field of struct statfs."""
    import ctypes
    from runsc_py.linux.libc import check, libc
    buf = ctypes.create_string_buffer(256)  # larger than struct statfs on every arch
    check(libc.fstatfs(fd, buf))
    return ctypes.c_long.from_buffer(buf).value


def _apparmor_exec(profile):
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            return write_proc_file(path, f"exec {profile}")
        except FileNotFoundError:
            continue
    raise OSError(2, "no AppArmor exec attribute in /proc/self/attr")


class StepFailed(Exception):
    """A confinement step failed: the message names the field and the error
    text engines match ("operation not permitted", "permission denied")."""


def _step(what, fn, *args, hint=None, **kwargs):
    """fn(*args, **kwargs); an OSError becomes StepFailed naming `what`,
    with the `hint` for its errno if there is one."""
    try:
        return fn(*args, **kwargs)
    except OSError as e:
        reason = (hint or {}).get(e.errno)
        raise StepFailed(f"{what}: {(e.strerror or str(e)).lower()}" + (f" ({reason})" if reason else "")) from None


def prepare(process, linux):
    return Confinement(process, linux)
