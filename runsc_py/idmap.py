"""The id maps of a new user namespace, and the gofer's own namespace.

user_namespaces(7) lets a process write /proc/PID/uid_map and gid_map of a
child namespace freely only if it holds CAP_SETUID/CAP_SETGID in the parent
namespace (root of the host, or root of rootless podman's namespace). An
unprivileged caller may write just one line mapping its own id, and for
gid_map only after /proc/PID/setgroups says "deny". Everything else (the
ranges of /etc/subuid and /etc/subgid that config.json's uidMappings and
gidMappings name) goes through the set-uid helpers newuidmap/newgidmap
(Debian package uidmap), which check the ranges against those files.
"""

import os
import shutil

from .errors import Failure


def write_id_maps(pid: int, linux):
    """Map the user namespace of process `pid` as linux.uidMappings and
    linux.gidMappings say (runtime-spec config-linux.md "User namespace
    mappings")."""
    uids, gids = linux.uid_mappings, linux.gid_mappings
    if os.geteuid() == 0:
        _write(pid, "uid_map", uids)
        _write(pid, "gid_map", gids)
        return
    if _self_map(uids, os.geteuid()) and _self_map(gids, os.getegid()):
        _write(pid, "uid_map", uids)
        # An unprivileged gid_map needs setgroups(2) denied in the namespace
        # first, or a process there could drop a group that denies it access.
        _write_proc(pid, "setgroups", "deny\n")
        _write(pid, "gid_map", gids)
        return
    _helper("newuidmap", "linux.uidMappings", pid, uids)
    _helper("newgidmap", "linux.gidMappings", pid, gids)


def _self_map(maps, own):
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def _lines(maps):
    return "".join(f"{mp.container_id} {mp.host_id} {mp.size}\n" for mp in maps)


def _write(pid, name, maps):
    _write_proc(pid, name, _lines(maps))


def _write_proc(pid, name, text):
    # One write(2): the kernel takes a map in a single write only.
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _helper(tool, field, pid, maps):
    """newuidmap PID inside outside count [...]: the set-uid helper checks
    the ranges against /etc/subuid (subgid) and writes the map."""
    path = shutil.which(tool) or next((p for p in (f"/usr/bin/{tool}", f"/usr/sbin/{tool}")
                                       if os.access(p, os.X_OK)), None)
    if path is None:
        raise Failure(f"{field}: mapping more than the caller's own id without root needs {tool} "
                      "(package uidmap), which is not installed")
    import subprocess
    argv = [path, str(pid)]
    for mp in maps:
        argv += [str(mp.container_id), str(mp.host_id), str(mp.size)]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure(f"{field}: {tool} did not finish within 30s") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise Failure(f"{field}: {tool} failed: {why[-1] if why else f'exit status {done.returncode}'}")


def enter_own_namespace():
    """For a caller without CAP_SYS_ADMIN over its mount namespace (an
    unprivileged user on the host): a user namespace mapping only the
    caller's own ids to themselves, with a mount namespace of its own, in
    which open_tree(OPEN_TREE_CLONE) is allowed. The gofer enters it before
    it opens the container's trees: it still opens every host path with
    the caller's own ids, as the caller could."""
    from .linux import ns
    uid, gid = os.geteuid(), os.getegid()
    ns.unshare(ns.CLONE_NEWUSER | ns.CLONE_NEWNS)
    _write_proc("self", "uid_map", f"{uid} {uid} 1\n")
    _write_proc("self", "setgroups", "deny\n")
    _write_proc("self", "gid_map", f"{gid} {gid} 1\n")
