"""The few libseccomp calls an allow-list needs, through ctypes.

For the runtime's own processes (sandbox.selfconfine): pyseccomp, which
the workload's linux.seccomp uses, costs ~35 ms to import (it imports
typing), on the path of every create; this binding costs a dlopen. The
library is loaded by `load()`, before the caller's root changes."""

import ctypes
import os

ACT_ALLOW = 0x7FFF0000
_NR_NONE = -1  # __NR_SCMP_ERROR: a name this architecture does not have

_lib = None


def ACT_ERRNO(errno_value):
    return 0x00050000 | (errno_value & 0xFFFF)


def load():
    """dlopen libseccomp (by its soname, without find_library's ldconfig run)."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_rule_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint)
        lib.seccomp_rule_add.restype = ctypes.c_int
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        lib.seccomp_load.restype = ctypes.c_int
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_release.restype = None
        _lib = lib
    return _lib


def load_allow_list(default_action, names):
    """Load a filter: `names` allowed, every other system call `default_action`.
    Names this architecture lacks are skipped. Raises OSError."""
    lib = load()
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise OSError(ctypes.get_errno() or 12, "seccomp_init failed")
    try:
        for name in names:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == _NR_NONE:
                continue
            rc = lib.seccomp_rule_add(ctx, ACT_ALLOW, number, 0)
            if rc < 0:
                raise OSError(-rc, f"seccomp_rule_add {name}: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
