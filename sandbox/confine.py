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
    umask, cwd (again, if it was not reachable as root)
    no_new_privs -> seccomp (the last step before execve) -> final CPU affinity
"""

import os
import resource

import prctl

from runsc_py.errors import Failure, Unsupported, log
from runsc_py.linux import process as proc_attrs
from specs.names import CAPABILITIES, CAPABILITY_LIST, RLIMITS

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
    check_sysctls(linux)


def check_sysctls(linux):
    new = {n.type for n in linux.namespaces if not n.path}
    joined = {n.type for n in linux.namespaces if n.path}
    own = new | joined
    for key in linux.sysctl:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            needed = "ipc"
        elif key.startswith("net."):
            needed = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            needed = "uts"
        else:
            raise Failure(f"linux.sysctl {key!r}: not a namespaced sysctl; setting it would change the host")
        if needed not in own:
            raise Failure(f"linux.sysctl {key!r}: needs the container's own {needed} namespace")


def _cpu_set(text):
    cpus = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class Capabilities:
    """Bit masks of the five sets, limited to what the kernel knows."""

    def __init__(self, caps):
        top = last_cap()
        self.unknown = set()
        masks = {}
        for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            mask = 0
            for name in getattr(caps, kind) or ():
                number = CAPABILITIES[name]
                if number > top:
                    self.unknown.add(name)
                    continue
                mask |= 1 << number
            masks[kind] = mask
        self.all = (1 << (top + 1)) - 1
        self.bounding = masks["bounding"] if caps.bounding is not None else self.all
        self.effective = masks["effective"]
        self.permitted = masks["permitted"]
        self.inheritable = masks["inheritable"]
        self.ambient = masks["ambient"]
        self.top = top

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
        self.caps = None
        if process.capabilities is not None:
            self.caps = Capabilities(process.capabilities)
            for name in sorted(self.caps.unknown):
                log.warning(f"capability {name} is not known to this kernel: skipped")
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
        if self.caps is not None:
            self.caps.drop_bounding()
        self._switch_user()
        if self.caps is not None:
            _step("capabilities", self.caps.set)
        if self.umask is not None:
            os.umask(self.umask)
        if not cwd_entered:
            # runc's rule: the cwd is entered as root first (it may be
            # reachable only so); if that was refused, it must work as the user.
            _step(f"chdir to cwd ({self.cwd!r}) set in config.json", os.chdir, self.cwd)
        if self.no_new_privs:
            prctl.set_no_new_privs(1)
            if self.seccomp is not None:
                listener = self._load_seccomp()
        if self.cpus_final is not None:
            _step("process.execCPUAffinity.final", os.sched_setaffinity, 0, self.cpus_final)
        return listener

    def _process_attributes(self):
        if self.personality is not None:
            _step("linux.personality", proc_attrs.personality, self.personality)
        for number, soft, hard, name in self.rlimits:
            _step(f"process.rlimits {name}", resource.setrlimit, number,
                  (_rlim(soft), _rlim(hard)))
        if self.oom_score_adj is not None:
            _step("process.oomScoreAdj", _write, "/proc/self/oom_score_adj", str(self.oom_score_adj))
        if self.io_priority is not None:
            _step("process.ioPriority", proc_attrs.ioprio_set, *self.io_priority)
        if self.scheduler is not None:
            _step("process.scheduler", proc_attrs.sched_setattr, **self.scheduler)
        if self.cpus_initial is not None:
            _step("process.execCPUAffinity.initial", os.sched_setaffinity, 0, self.cpus_initial)
        if self.apparmor:
            _step("process.apparmorProfile", _apparmor_exec, self.apparmor)
        if self.selinux:
            _step("process.selinuxLabel", _write, "/proc/self/attr/exec", self.selinux)

    def _switch_user(self):
        if self.caps is not None:
            # Keep the permitted set across the uid change; capset then
            # sets exactly what the spec asks for.
            prctl.set_keepcaps(1)
        _step("process.user.additionalGids", os.setgroups, self.groups)
        _step("process.user.gid", os.setresgid, self.gid, self.gid, self.gid)
        _step("process.user.uid", os.setresuid, self.uid, self.uid, self.uid)
        if self.caps is not None:
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


def _rlim(value):
    # The spec's uint64 maximum is RLIM_INFINITY.
    return resource.RLIM_INFINITY if value >= (1 << 64) - 1 else value


def _write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _apparmor_exec(profile):
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            return _write(path, f"exec {profile}")
        except FileNotFoundError:
            continue
    raise OSError(2, "no AppArmor exec attribute in /proc/self/attr")


class StepFailed(Exception):
    """A confinement step failed: the message names the field and the error
    text engines match ("operation not permitted", "permission denied")."""


def _step(what, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except OSError as e:
        raise StepFailed(f"{what}: {(e.strerror or str(e)).lower()}") from None


def prepare(process, linux):
    return Confinement(process, linux)
