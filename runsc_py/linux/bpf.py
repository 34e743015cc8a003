"""bpf(2) for cgroup device programs: load, attach, detach, query.

Only what the cgroup v2 device filter needs (include/uapi/linux/bpf.h):
BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program, BPF_PROG_ATTACH
and BPF_PROG_DETACH at BPF_CGROUP_DEVICE, BPF_PROG_QUERY for the programs
attached to a cgroup and BPF_PROG_GET_FD_BY_ID to name one of them for a
detach. Each call fills the part of `union bpf_attr` its command reads;
the kernel takes a shorter attr than its own and zero-fills the rest.
Errors are OSError(errno, strerror, "bpf(COMMAND)")."""

import ctypes
import errno

from .libc import syscall

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6              # enum bpf_attach_type
BPF_F_ALLOW_MULTI = 1 << 1         # attach flag: more programs may be attached here and below

# The verifier's license check only matters for GPL-only helpers, which a
# device program does not call; this is the project's own license.
LICENSE = b"Apache-2.0"
LOG_SIZE = 1 << 16
MAX_QUERY = 64                     # BPF_CGROUP_MAX_PROGS: programs per cgroup and attach type

_NAMES = {BPF_PROG_LOAD: "BPF_PROG_LOAD", BPF_PROG_ATTACH: "BPF_PROG_ATTACH", BPF_PROG_DETACH: "BPF_PROG_DETACH",
          BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID", BPF_PROG_QUERY: "BPF_PROG_QUERY"}


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16)]


class _Attach(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _Query(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class _GetFdById(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


def _bpf(cmd, attr):
    return syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)),
                   path=f"bpf({_NAMES[cmd]})")


def load_cgroup_device(insns: bytes, name=b"runsc_py_dev"):
    """The fd (close-on-exec, as every bpf fd) of the device program
    `insns` (8-byte struct bpf_insn, host byte order). Loaded without a
    verifier log first; if the verifier refuses it, loaded again with one,
    so the error says why."""
    code = (ctypes.c_char * len(insns)).from_buffer_copy(insns)
    license = ctypes.create_string_buffer(LICENSE)
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(insns) // 8,
                     insns=ctypes.addressof(code), license=ctypes.addressof(license), prog_name=name[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EINVAL):
            raise
        first = e
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, LOG_SIZE, ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        text = log.value.decode(errors="replace").strip()
        if not text:
            raise first from None
        last = " | ".join(text.splitlines()[-3:])
        raise OSError(e.errno, f"{e.strerror}: the verifier says: {last}", e.filename) from None


def attach(cgroup_fd, prog_fd, flags=BPF_F_ALLOW_MULTI):
    _bpf(BPF_PROG_ATTACH, _Attach(target_fd=cgroup_fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE,
                                  attach_flags=flags))


def detach(cgroup_fd, prog_fd):
    _bpf(BPF_PROG_DETACH, _Attach(target_fd=cgroup_fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE))


def attached(cgroup_fd):
    """The ids of the device programs attached to this cgroup itself (not
    those it inherits)."""
    ids = (ctypes.c_uint32 * MAX_QUERY)()
    attr = _Query(target_fd=cgroup_fd, attach_type=BPF_CGROUP_DEVICE, prog_ids=ctypes.addressof(ids),
                  prog_cnt=MAX_QUERY)
    _bpf(BPF_PROG_QUERY, attr)
    return list(ids[:attr.prog_cnt])


def fd_by_id(prog_id):
    return _bpf(BPF_PROG_GET_FD_BY_ID, _GetFdById(prog_id=prog_id))
