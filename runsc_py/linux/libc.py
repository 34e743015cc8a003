"""Loading libc once and calling syscalls that the os module lacks."""

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
_syscall = libc.syscall
_syscall.restype = ctypes.c_long

# x86_64 and aarch64 syscall numbers of the calls the os module does not wrap.
_NR = {
    "x86_64": {"pivot_root": 155, "open_tree": 428, "move_mount": 429, "fsopen": 430,
               "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_send_signal": 424,
               "openat2": 437, "mount_setattr": 442, "setns": 308, "unshare": 272,
               "close_range": 436, "clone3": 435, "capset": 126, "ioprio_set": 251,
               "sched_setattr": 314, "bpf": 321},
    "aarch64": {"pivot_root": 41, "open_tree": 428, "move_mount": 429, "fsopen": 430,
                "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_send_signal": 424,
                "openat2": 437, "mount_setattr": 442, "setns": 268, "unshare": 97,
                "close_range": 436, "clone3": 435, "capset": 91, "ioprio_set": 30,
                "sched_setattr": 274, "bpf": 280},
}[os.uname().machine]


def check(ret, path=None):
    """Turn a -1 return into OSError with errno and the path it concerns."""
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ret


def syscall(name, *args, path=None):
    return check(_syscall(_NR[name], *args), path)


def cstr(s):
    return None if s is None else os.fsencode(s)
