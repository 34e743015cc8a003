"""Process attributes the os module and python-prctl do not reach: the
exact capability sets (capset(2), including capabilities newer than
python-prctl's headers), ambient capabilities, resource limits with their
errno, I/O priority, scheduling attributes and the execution domain
(personality); and the caller's own capability sets."""

import ctypes

from .libc import check, libc, syscall

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int):
    """Set the three capability sets of the calling thread to these bitmasks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    syscall("capset", ctypes.byref(header), data, path="capset")


def own_capabilities() -> dict:
    """The calling process's capability sets as bit masks, by the names
    /proc/PID/status gives them ("CapPrm" -> "permitted", ...)."""
    names = {"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective", "CapBnd": "bounding",
             "CapAmb": "ambient"}
    sets = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in names:
                sets[names[key]] = int(value, 16)
    return sets


def _prctl(option, a2=0, a3=0, a4=0, a5=0, what=None):
    libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    check(libc.prctl(option, a2, a3, a4, a5), what)


def ambient_clear():
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="PR_CAP_AMBIENT_CLEAR_ALL")


def ambient_raise(cap: int):
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, what=f"ambient capability {cap}")


class _Rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int):
    """setrlimit(2) raising OSError with its errno (the resource module
    turns EPERM into a ValueError that no longer says which errno it was).
    RLIM_INFINITY is 2**64-1."""
    libc.setrlimit.argtypes = (ctypes.c_int, ctypes.POINTER(_Rlimit))
    check(libc.setrlimit(resource, ctypes.byref(_Rlimit(soft, hard))), "setrlimit")


def ioprio_set(io_class: int, level: int):
    syscall("ioprio_set", IOPRIO_WHO_PROCESS, 0, (io_class << IOPRIO_CLASS_SHIFT) | level, path="ioprio_set")


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32), ("sched_flags", ctypes.c_uint64),
                ("sched_nice", ctypes.c_int32), ("sched_priority", ctypes.c_uint32),
                ("sched_runtime", ctypes.c_uint64), ("sched_deadline", ctypes.c_uint64),
                ("sched_period", ctypes.c_uint64), ("sched_util_min", ctypes.c_uint32),
                ("sched_util_max", ctypes.c_uint32)]


def sched_setattr(policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0):
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period, 0, 0)
    syscall("sched_setattr", 0, ctypes.byref(attr), 0, path="sched_setattr")


def personality(persona: int):
    libc.personality.argtypes = (ctypes.c_ulong,)
    check(libc.personality(persona), "personality")
