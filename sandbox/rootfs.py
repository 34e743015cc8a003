"""Assembling the container's root inside the sandbox's mount namespace.

Order, and why:
1. This mount namespace and the gofer's trees are cut off from the host's
   mount propagation (isolate_from_host). The rootfs tree (a detached copy
   the gofer made) is attached over the rootfs directory (our cwd, carried
   into the new mount namespace by unshare), without naming any host path.
2. Every mount of config.json is attached, in order, at a destination
   resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from the
   tree's fd, which acts as "/" for the resolution: symlinks and `..` in
   the image stay inside (the CVE-2021-30465 class is excluded by
   construction, not by checks). Bind mounts arrive as trees from the
   gofer; file systems tied to a namespace (proc, sysfs, mqueue, cgroup,
   devpts) and tmpfs are created here with fsopen, so they belong to the
   container's namespaces.
3. prestart/createRuntime/createContainer hooks run here: "after the
   environment is built, before pivot_root" (runtime-spec config.md).
4. pivot_root: the host's file system leaves this mount namespace; then
   linux.rootfsPropagation applies to the new "/". A container without a
   mount namespace of its own (a joined or the runtime's) skips 1's "/"
   and attaching: its root is the gofer's tree on a detached tmpfs,
   entered with chroot (hold_root, enter_root say why).
5. /dev entries, masked and read-only paths, sysctls, then
   `root.readonly`, all with plain paths that can only reach the container.
"""

import errno
import os
import stat

from runsc_py.linux import fs
from runsc_py.linux import mount as m
from runsc_py.linux.mountopts import parse as parse_options

from .confine import write_proc_file

AT_FDCWD = -100
IN_ROOT = fs.RESOLVE_IN_ROOT | fs.RESOLVE_NO_MAGICLINKS

DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"))

_PROPAGATION = {"private": m.MS_PRIVATE, "slave": m.MS_SLAVE, "shared": m.MS_SHARED,
                "unbindable": m.MS_UNBINDABLE}


class MountFailure(Exception):
    """A mount step failed: the message names the mount."""


def own_mount_namespace(spec):
    """Whether the container has a mount namespace of its own (a new one).
    Without one (linux.namespaces has no `mount` entry, or names one by
    path) the container shares a namespace other processes live in, and
    its root is never attached there (see enter_root)."""
    return any(n.type == "mount" and not n.path for n in spec.linux.namespaces)


def isolate_from_host(tree_fd, bind_fds, mounts, device_fds, own_namespace):
    """Before anything is attached: no mount made in this mount namespace
    may reach the host's.

    This namespace's copy of the host's mounts becomes a slave tree (host
    mount events still arrive, ours never leave: runc's default rslave),
    but only when the namespace is the container's own: a shared or joined
    one is left as it is (its other processes' propagation is theirs).
    Each tree the gofer cloned becomes a slave too: a clone of a shared mount (a
    systemd host's "/" is shared) is a peer of its source, so a mount made
    inside it would appear on the host too, and pivot_root refuses a shared
    root. Bind mounts whose options ask for shared propagation keep it:
    that is how a container's mounts reach the host on purpose (Kubernetes'
    Bidirectional mount propagation)."""
    if own_namespace:
        m.mount(None, "/", None, m.MS_SLAVE | m.MS_REC)
    fds = [tree_fd, *device_fds]
    for index, fd in bind_fds.items():
        options = parse_options(mounts[index].options, mounts[index].type)
        if not any(flag == m.MS_SHARED for flag, _recursive in options.propagation):
            fds.append(fd)
    for fd in fds:
        m.mount_setattr(fd, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE, propagation=m.MS_SLAVE)


def reroot_detached(propagation, readonly):
    """linux.rootfsPropagation and root.readonly for a root on a detached
    tree (hold_root): the kernel changes a detached mount's attributes only
    at the top of its tree, which the container's "/" is not (the holder
    tmpfs is). So "/" becomes a recursive clone of itself, whose top it is,
    with the attributes set there, and the process moves its root onto it
    (the clone is as detached as the tree it copies)."""
    clone = m.open_tree(AT_FDCWD, "/", m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | m.AT_RECURSIVE)
    try:
        if propagation:
            flag, recursive = _propagation_flag(propagation)
            m.mount_setattr(clone, "", m.AT_EMPTY_PATH | (m.AT_RECURSIVE if recursive else 0),
                            propagation=flag)
        if readonly:
            m.mount_setattr(clone, "", m.AT_EMPTY_PATH, m.MOUNT_ATTR_RDONLY)
        os.fchdir(clone)
        os.chroot(".")
        os.chdir("/")
    finally:
        os.close(clone)


def _propagation_flag(propagation):
    """(MS_* flag, recursive) of a linux.rootfsPropagation value."""
    recursive = propagation.startswith("r") and propagation[1:] in _PROPAGATION
    return _PROPAGATION[propagation[1:] if recursive else propagation], recursive


def set_root_propagation(propagation):
    """runtime-spec linux.rootfsPropagation, applied to the container's "/"
    once its mounts are made, after pivot_root (before it, a shared root
    would make pivot_root fail and our mounts reach the host; an unbindable
    one would refuse the binds of masked paths). Unset, nothing changes:
    the root stays the slave (or private) mount isolate_from_host made it,
    as with runc, which applies the value only when config.json gives one."""
    if not propagation:
        return
    flag, recursive = _propagation_flag(propagation)
    m.mount(None, "/", None, flag | (m.MS_REC if recursive else 0))


def attach_root(tree_fd):
    """Attach the rootfs tree over the cwd (the rootfs directory, carried
    into this mount namespace by unshare): no host path is named."""
    m.move_mount(tree_fd, "", AT_FDCWD, ".", m.MOVE_MOUNT_F_EMPTY_PATH)


def hold_root(tree_fd):
    """Without a mount namespace of its own: attach the rootfs tree on a
    fresh detached tmpfs, not in the namespace; returns the tmpfs's fd.

    The kernel lets a process mount onto a detached tree only if the tree
    was made in its own mount namespace (or by fsmount): the gofer cloned
    the rootfs in the runtime's, so in a joined namespace nothing could be
    mounted on it. The tmpfs is fsmount's, so mounts inside it can be made
    from any namespace. It also gives a chroot escape nothing to climb to:
    above the container's root is only this empty tmpfs. Closing the
    tmpfs's fd (once the last mount is made) dissolves the tree as a lazy
    umount does: the root and its mounts stay while the container uses
    them, and vanish with it."""
    holder = new_filesystem(_Mnt("tmpfs", "tmpfs", "/"), parse_options(["mode=700"]))
    try:
        m.move_mount(tree_fd, "", holder, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH)
    except BaseException:
        os.close(holder)
        raise
    return holder


def enter_root(tree_fd, no_pivot, own_namespace):
    """Make the attached tree the root; the host's root leaves this mount
    namespace (pivot_root, then a lazy unmount of the old root).

    Without a mount namespace of its own, the root is the gofer's tree
    itself, on a detached tmpfs (hold_root), entered with chroot: it is
    attached nowhere in the shared or joined namespace. Not over the
    rootfs path there, runc's way (measured with runc 1.1.5: sharing the
    runtime's namespace, its mounts appear there, stay after the container
    exits, and "/" is made private; in a joined one it pivot_roots that
    namespace, so the other process's "/" became the container's rootfs
    and the namespace's own tree was gone), and not on a fresh directory:
    pivot_root in a namespace other processes use moves their root too,
    an attached tree shows the container's mounts to them and propagates
    to peers, and a killed container would leave its mounts there. A
    detached tree goes with its last user. The container's
    /proc/self/mountinfo then lists nothing (its mounts are in no
    namespace). The container still is in the namespace (runtime-spec
    config-linux.md: a namespace with a path "MUST" be joined; a type left
    out is the runtime's): /proc/self/ns/mnt is that namespace's. Its
    rootfs and bind sources are the paths the runtime sees (the gofer
    opened them in the runtime's namespace)."""
    os.fchdir(tree_fd)
    if not own_namespace:
        os.chroot(".")
    elif no_pivot:
        # --no-pivot (ramfs roots cannot be pivoted): move the tree over /
        # and chroot. The old root stays underneath; runc warns the same.
        m.mount(".", "/", None, m.MS_MOVE)
        os.chroot(".")
    else:
        m.pivot_root(".", ".")
        m.umount2(".", m.MNT_DETACH)
    os.chdir("/")


def _components(path):
    return [c for c in path.split("/") if c and c != "."]


def resolve(root_fd, path, flags=fs.O_PATH):
    return fs.openat2(root_fd, "/".join(_components(path)) or ".", flags, resolve=IN_ROOT)


MAX_LINKS = 40  # the kernel's own bound on symlinks in one resolution


def make_target(root_fd, path, is_dir, _links=0):
    """An O_PATH fd of `path` inside the root, creating what is missing
    (directories, and the last component as a file when `is_dir` is false).

    A dangling symlink on the way is followed inside the root and its target
    created there (what runc does), never on the host: its target path is
    joined to the root lexically, with `..` stopping at the root."""
    try:
        return resolve(root_fd, path)
    except FileNotFoundError:
        pass
    if _links > MAX_LINKS:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    parts = _components(path)
    for i, name in enumerate(parts):
        try:
            os.close(resolve(root_fd, "/".join(parts[:i + 1])))
            continue
        except FileNotFoundError:
            pass
        parent = resolve(root_fd, "/".join(parts[:i]))
        try:
            link = _dangling_link(parent, name)
            if link is not None:
                base = [] if link.startswith("/") else parts[:i]
                target = _clamp(base + link.split("/") + parts[i + 1:])
                return make_target(root_fd, "/".join(target), is_dir, _links + 1)
            last = i == len(parts) - 1
            try:
                if last and not is_dir:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                                     0o644, dir_fd=parent))
                else:
                    os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass  # another create sharing this rootfs made it meanwhile: resolved below
        finally:
            os.close(parent)
    return resolve(root_fd, path)


def _dangling_link(parent_fd, name):
    """The target of `name` if it is a symlink (it resolved to nothing)."""
    try:
        if stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            return os.readlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    return None


def _clamp(parts):
    """Lexical normalisation inside a root: `..` at the root stays there."""
    out = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    return out


def new_filesystem(mnt, options):
    """A detached mount of a new file system instance (tmpfs, proc, ...)."""
    return _fsmount(mnt.type, mnt.source, options.data, options.attr_set)


def _fsmount(fstype, source, data, attrs):
    """fsopen + fsconfig (`key=value` strings and flags, in order) + fsmount."""
    fsfd = m.fsopen(fstype)
    try:
        if source:
            m.fsconfig_string(fsfd, "source", source)
        for item in data:
            key, eq, value = item.partition("=")
            if eq:
                m.fsconfig_string(fsfd, key, value)
            else:
                m.fsconfig_flag(fsfd, key)
        m.fsconfig_create(fsfd)
        return m.fsmount(fsfd, attrs)
    finally:
        os.close(fsfd)


def _attach(src_fd, dst_fd, options, detached):
    """Attach `src_fd` at `dst_fd` with the mount's propagation options.
    The kernel changes the propagation of an attached mount only in the
    caller's namespace: onto a detached tree (`detached`), the options are
    applied to the source before it moves."""
    if detached:
        _set_propagation(src_fd, options)
    m.move_mount(src_fd, "", dst_fd, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH)
    if not detached:
        _set_propagation(src_fd, options)


def _set_propagation(fd, options):
    for propagation, recursive in options.propagation:
        m.mount_setattr(fd, "", m.AT_EMPTY_PATH | (m.AT_RECURSIVE if recursive else 0),
                        propagation=propagation)


def mount_cgroup(root_fd, mnt, options, layout, detached):
    """The `cgroup` mount type: what the host has, seen through the
    container's cgroup namespace. On a v1 or hybrid host: a tmpfs with one
    mount per hierarchy, like the host's /sys/fs/cgroup; on a pure v2 host:
    cgroup2. The tmpfs is filled while it is detached (a read-only flag
    can be set only on a mount of the caller's namespace or on a detached
    tree's top), then attached."""
    if layout == [["", "cgroup2", []]]:
        return _mount_new(root_fd, mnt.destination, _Mnt("cgroup2", "cgroup", mnt.destination), options,
                          detached)
    dst = make_target(root_fd, mnt.destination, True)
    try:
        tmpfs = new_filesystem(_Mnt("tmpfs", "tmpfs", mnt.destination), parse_options(["mode=755"]))
        try:
            for name, fstype, flags in layout:
                sub = make_target(tmpfs, name, True)
                try:
                    tree = _cgroup_hierarchy(name, fstype, flags, options.attr_set)
                    try:
                        _attach(tree, sub, options, True)
                    finally:
                        os.close(tree)
                finally:
                    os.close(sub)
            if options.attr_set & m.MOUNT_ATTR_RDONLY:
                m.mount_setattr(tmpfs, "", m.AT_EMPTY_PATH, m.MOUNT_ATTR_RDONLY)
            _attach(tmpfs, dst, options, detached)
        finally:
            os.close(tmpfs)
    finally:
        os.close(dst)


def _cgroup_hierarchy(name, fstype, flags, attrs):
    """A new mount of one hierarchy. Without a cgroup namespace of the
    container's user namespace (rootless podman keeps the host's cgroup
    namespace) the kernel refuses it: then a recursive copy of the same
    hierarchy from this mount namespace, which is still the copy of the
    host's (before pivot_root), shows the very same tree. Only the fixed
    /sys/fs/cgroup mount points of the host's layout are named."""
    try:
        return _fsmount(fstype, None, flags, attrs)
    except PermissionError:
        pass
    tree = m.open_tree(AT_FDCWD, f"/sys/fs/cgroup/{name}",
                       m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | m.AT_RECURSIVE)
    try:
        if attrs:
            m.mount_setattr(tree, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE, attrs, 0)
    except BaseException:
        os.close(tree)
        raise
    return tree


class _Mnt:
    def __init__(self, type, source, destination):
        self.type, self.source, self.destination = type, source, destination


def _mount_new(root_fd, destination, mnt, options, detached):
    src = new_filesystem(mnt, options)
    try:
        dst = make_target(root_fd, destination, True)
        try:
            _attach(src, dst, options, detached)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def mount_all(root_fd, mounts, bind_fds, cgroup_layout, detached):
    """Attach every mount of config.json in order; `bind_fds` maps the
    index of a bind mount to the gofer's tree. `detached`: the root tree
    is attached nowhere (a container without a mount namespace of its own,
    enter_root)."""
    for index, mnt in enumerate(mounts):
        options = parse_options(mnt.options, mnt.type)
        try:
            if options.bind:
                src = bind_fds[index]
                is_dir = stat.S_ISDIR(os.fstat(src).st_mode)
                dst = make_target(root_fd, mnt.destination, is_dir)
                try:
                    _attach(src, dst, options, detached)
                finally:
                    os.close(dst)
            elif mnt.type == "cgroup":
                mount_cgroup(root_fd, mnt, options, cgroup_layout, detached)
            else:
                if not mnt.type:
                    raise MountFailure("no type given")
                _mount_new(root_fd, mnt.destination, mnt, options, detached)
        except OSError as e:
            raise MountFailure(f"mounts[{index}] ({mnt.type or 'bind'} on {mnt.destination}): "
                               f"{(e.strerror or str(e)).lower()}") from None


def device_sources(spec):
    """Host device nodes the gofer opens for the sandbox to bind: in a user
    namespace mknod(2) of a device is refused, so (as runc does) the
    default devices and linux.devices are bind mounts of the host's nodes
    at the same paths. A FIFO is made in place even there. So too when the
    runtime itself runs in a user namespace (rootless podman's)."""
    from runsc_py.rootless import in_user_namespace
    if not any(n.type == "user" for n in spec.linux.namespaces) and not in_user_namespace():
        return []
    paths = [f"/dev/{name}" for name, _major, _minor in DEFAULT_DEVICES]
    return paths + [d.path for d in spec.linux.devices if d.type != "p" and d.path not in paths]


def make_devices(devices, bind_device_fds, can_mknod):
    """Default devices (runtime-spec config-linux.md "Default Devices"), then
    linux.devices, then the /dev symlinks. Runs after pivot_root: plain paths
    resolve inside the container. `bind_device_fds`: the gofer's trees of
    host device nodes (device_sources), used when `can_mknod` is false."""
    old = os.umask(0)
    try:
        for name, major, minor in DEFAULT_DEVICES:
            _make_device(f"/dev/{name}", stat.S_IFCHR | 0o666, major, minor, 0, 0,
                         bind_device_fds.get(f"/dev/{name}"), can_mknod)
        for dev in devices:
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
            # runtime-spec: fileMode "is the file mode of the device file"; runc defaults it to 0666.
            mode = dev.file_mode if dev.file_mode is not None else 0o666
            try:
                _make_device(dev.path, kind | (mode & 0o7777), dev.major or 0, dev.minor or 0,
                             dev.uid or 0, dev.gid or 0, bind_device_fds.get(dev.path),
                             can_mknod or kind == stat.S_IFIFO)
            except OSError as e:
                raise MountFailure(f"linux.devices {dev.path}: {(e.strerror or str(e)).lower()}") from None
    finally:
        os.umask(old)
    for name, target in DEV_LINKS:
        _symlink(target, f"/dev/{name}")
    if os.path.exists("/dev/pts/ptmx"):
        _symlink("pts/ptmx", "/dev/ptmx", replace=True)


def _make_device(path, mode, major, minor, uid, gid, bind_fd, can_mknod):
    if os.path.lexists(path):
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return
        os.unlink(path)  # a symlink in the image must not stand for a device
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if can_mknod:
        os.mknod(path, mode, os.makedev(major, minor))
        os.chown(path, uid, gid)
    elif bind_fd is not None:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o666))
        target = os.open(path, fs.O_PATH | os.O_NOFOLLOW)
        try:
            m.move_mount(bind_fd, "", target, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            os.close(target)
    else:
        raise OSError(errno.EPERM, "no host device to bind in a user namespace", path)


def _symlink(target, path, replace=False):
    try:
        os.symlink(target, path)
    except FileExistsError:
        if replace and not os.path.isdir(path):
            os.unlink(path)
            os.symlink(target, path)
    except FileNotFoundError:
        pass  # no /dev directory in this root


def mask_paths(root_fd, paths):
    """runtime-spec linux.maskedPaths: "MUST render those paths inaccessible":
    a read-only empty tmpfs over a directory, /dev/null over anything else."""
    for path in paths:
        try:
            dst = resolve(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            if stat.S_ISDIR(os.fstat(dst).st_mode):
                src = new_filesystem(_Mnt("tmpfs", "tmpfs", path), parse_options(["ro"]))
            else:
                src = m.open_tree(AT_FDCWD, "/dev/null", m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC)
            try:
                m.move_mount(src, "", dst, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                os.close(src)
        finally:
            os.close(dst)


def readonly_paths(root_fd, paths):
    """runtime-spec linux.readonlyPaths: "MUST set those paths as read-only"."""
    for path in paths:
        try:
            dst = resolve(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            tree = m.open_tree(dst, "", m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | m.AT_EMPTY_PATH | m.AT_RECURSIVE)
            try:
                m.mount_setattr(tree, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE, m.MOUNT_ATTR_RDONLY)
                m.move_mount(tree, "", dst, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                os.close(tree)
        finally:
            os.close(dst)


def write_sysctls(sysctl):
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            # Never a plain open: with the image's /proc a symlink into a
            # volume, the value would land in (and create) a plain file there.
            write_proc_file(path, value)
        except OSError as e:
            raise MountFailure(f"linux.sysctl {key}: {(e.strerror or str(e)).lower()}") from None


def make_root_readonly():
    m.mount_setattr(AT_FDCWD, "/", 0, m.MOUNT_ATTR_RDONLY)


def ensure_cwd(root_fd, cwd):
    """runc creates a missing process.cwd; so do we, inside the root. One
    that exists must be a directory: better refused at create than at start."""
    try:
        fd = make_target(root_fd, cwd, True)
    except OSError as e:
        raise MountFailure(f"process.cwd {cwd}: {(e.strerror or str(e)).lower()}") from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise MountFailure(f"process.cwd {cwd}: {os.strerror(errno.ENOTDIR).lower()}")
    finally:
        os.close(fd)
