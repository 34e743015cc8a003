"""openat2(2) and helpers for resolving paths inside a root."""

import ctypes
import os

from .libc import syscall

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = 0o10000000


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd, path, flags, mode=0, resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return syscall("openat2", dirfd, os.fsencode(path), ctypes.byref(how),
                   ctypes.c_size_t(ctypes.sizeof(how)), path=path)


def close_range(first, last=0xFFFFFFFF, flags=0):
    syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags))


def close_all_except(keep):
    """Close every fd except those in `keep` (a fork keeps the parent's fds,
    close-on-exec or not: a forked helper must drop what is not its own,
    e.g. the create's lock fd, whose flock it would otherwise hold)."""
    first = 0
    for fd in sorted(keep):
        if fd > first:
            close_range(first, fd - 1)
        first = max(first, fd + 1)
    close_range(first)
