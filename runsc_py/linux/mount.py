"""mount(2), umount2, pivot_root and the new mount API (open_tree,
move_mount, fsopen/fsconfig/fsmount, mount_setattr)."""

import ctypes

from .libc import check, cstr, libc, syscall

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_UNBINDABLE = 1 << 17
MNT_DETACH = 2

# open_tree / move_mount / fsmount / mount_setattr
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount(source, target, fstype, flags, data=None):
    check(libc.mount(cstr(source), cstr(target), cstr(fstype), ctypes.c_ulong(flags), cstr(data)),
          target)


def umount2(target, flags=0):
    check(libc.umount2(cstr(target), flags), target)


def pivot_root(new_root, put_old):
    syscall("pivot_root", cstr(new_root), cstr(put_old), path=new_root)


def open_tree(dirfd, path, flags):
    return syscall("open_tree", dirfd, cstr(path), ctypes.c_uint(flags), path=path)


def move_mount(from_fd, from_path, to_fd, to_path, flags):
    syscall("move_mount", from_fd, cstr(from_path), to_fd, cstr(to_path), ctypes.c_uint(flags),
            path=to_path or from_path)


def fsopen(fstype):
    return syscall("fsopen", cstr(fstype), ctypes.c_uint(FSOPEN_CLOEXEC), path=fstype)


def fsconfig_string(fsfd, key, value):
    syscall("fsconfig", fsfd, FSCONFIG_SET_STRING, cstr(key), cstr(value), 0, path=f"{key}={value}")


def fsconfig_flag(fsfd, key):
    syscall("fsconfig", fsfd, FSCONFIG_SET_FLAG, cstr(key), None, 0, path=key)


def fsconfig_create(fsfd):
    syscall("fsconfig", fsfd, FSCONFIG_CMD_CREATE, None, None, 0)


def fsmount(fsfd, attrs=0):
    return syscall("fsmount", fsfd, ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(attrs))


def mount_setattr(dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0):
    attr = MountAttr(attr_set, attr_clr, propagation, 0)
    syscall("mount_setattr", dirfd, cstr(path), ctypes.c_uint(flags), ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)), path=path or None)
