"""Namespaces: unshare, setns, and the namespace type of an fd."""

import fcntl

from .libc import syscall

CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI namespace type -> (clone flag, /proc/PID/ns name)
TYPES = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)


def unshare(flags):
    syscall("unshare", flags)


def setns(fd, nstype=0, path=None):
    syscall("setns", fd, nstype, path=path)


def nstype_of(fd):
    """The CLONE_NEW* flag of the namespace `fd` refers to."""
    return fcntl.ioctl(fd, NS_GET_NSTYPE)
