"""The runtime's own processes confine themselves once set up.

After create has committed, the sandbox and the gofer only serve: the
sandbox waits for signals, its PID 1 and control requests; the gofer waits
for the exit status and writes it. Each then drops every capability it no
longer needs (bounding set first: that needs CAP_SETPCAP, which goes with
the rest), sets no_new_privs and loads a seccomp allow-list of the system
calls its loop makes: a process that took one over could do little more
than the loop does (libseccomp through runsc_py.linux.libseccomp: loading
pyseccomp would cost every create ~35 ms). gVisor confines its Sentry
(runsc/boot/filter) and its gofer (runsc/fsgofer/filter) the same way; the
lists here are our own, for CPython's needs.

What each keeps:
- sandbox: CAP_KILL (the workload may run as another uid; forwarding a
  signal to it needs the capability). A pod's sandbox is not confined: it
  forks its members' sandboxes, which need everything a set-up needs
  (namespaces, mounts), and they would inherit its filter and
  no_new_privs.
- gofer: no capability (the runtime root is its owner's, which is its uid:
  writing the exit file needs none).

A system call outside the list fails with EPERM rather than killing the
process: the loop survives a path we did not foresee (and reports it as
an error) instead of taking the workload with it.
"""

import errno

import prctl

from runsc_py.linux import libseccomp
from runsc_py.linux import process as proc_attrs

CAP_KILL = 5
SANDBOX_CAPS = (CAP_KILL,)
GOFER_CAPS = ()

# CPython's own needs: memory, threads' futexes, signals, time, exit.
_RUNTIME = ["brk", "mmap", "munmap", "mremap", "madvise", "mprotect", "futex", "rt_sigreturn",
            "rt_sigprocmask", "rt_sigaction", "sigaltstack", "exit", "exit_group", "getpid", "gettid",
            "getppid", "clock_gettime", "clock_nanosleep", "nanosleep", "getrandom", "restart_syscall",
            "fstat", "newfstatat", "statx", "lseek", "read", "write", "close", "fcntl", "ioctl",
            "poll", "ppoll", "select", "pselect6"]

# The sandbox's loop: the signal pipe, the control socket, PID 1 and the gofer.
# (Python's socket objects ask the kernel for their name and type.)
SANDBOX_SYSCALLS = _RUNTIME + ["accept", "accept4", "recvmsg", "recvfrom", "sendmsg", "sendto", "getsockopt",
                               "setsockopt", "getsockname", "getpeername", "kill", "tgkill", "wait4", "waitid",
                               "dup", "dup3"]

# The gofer's loop: one socket, and the atomic write of the exit file.
GOFER_SYSCALLS = _RUNTIME + ["recvmsg", "recvfrom", "sendmsg", "sendto", "getsockopt", "getsockname",
                             "openat", "fsync", "fdatasync", "rename", "renameat", "renameat2", "unlink",
                             "unlinkat", "fchmod", "umask"]


def confine(keep_caps, syscalls, last_cap):
    """Keep only `keep_caps` (numbers), set no_new_privs, load the allow-list."""
    for number in range(last_cap + 1):
        if number not in keep_caps:
            prctl.capbset_drop(number)
    mask = 0
    for number in keep_caps:
        mask |= 1 << number
    proc_attrs.capset(mask, mask, 0)  # inheritable 0 clears the ambient set too
    prctl.set_no_new_privs(True)
    libseccomp.load_allow_list(libseccomp.ACT_ERRNO(errno.EPERM), syscalls)


def confine_sandbox(last_cap):
    confine(SANDBOX_CAPS, SANDBOX_SYSCALLS, last_cap)


def confine_gofer():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    confine(GOFER_CAPS, GOFER_SYSCALLS, last_cap)


def preload():
    """Load libseccomp while the host's library is reachable: the sandbox
    confines itself after PID 1's pivot_root."""
    libseccomp.load()
