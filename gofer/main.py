"""The gofer: the only process of a container that opens host paths.

It runs in the host's mount namespace, forked from `create`. It opens the
rootfs and every bind-mount source, turns each into a detached mount tree
(`open_tree(OPEN_TREE_CLONE)` with the mount's attributes already set) and
hands the fds to the sandbox, which attaches them inside the container where
the host is no longer reachable. Afterwards it stays as the container's
filesystem broker and its exit-status recorder: the sandbox reports the
workload's exit status here before it exits, and the gofer writes it to the
`.exit` file in the runtime root (the sandbox, pivoted into the container,
cannot reach the root and must not hold an fd to it). It exits when the
sandbox goes (EOF on their socket); if the gofer dies, the sandbox stops the
container (gVisor #601 semantics).
"""

import os

from runsc_py import jsonio
from runsc_py.linux import mount as m
from runsc_py.linux import unix
from runsc_py.linux.fs import close_all_except
from runsc_py.linux.mountopts import parse as parse_options

NAME = "runsc-py-gofer"


def bind_source(bundle, source):
    """runtime-spec config.md: a relative bind source is relative to the bundle."""
    return source if os.path.isabs(source) else os.path.join(bundle, source)


def open_bind(path, options):
    """A detached copy of the tree at `path`, with the mount's attributes set."""
    flags = m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | (m.AT_RECURSIVE if options.recursive else 0)
    fd = m.open_tree(-100, path, flags)  # AT_FDCWD
    try:
        if options.attr_set or options.attr_clr:
            m.mount_setattr(fd, "", m.AT_EMPTY_PATH | (m.AT_RECURSIVE if options.recursive else 0),
                            options.attr_set, options.attr_clr)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_trees(spec, bundle, device_sources=(), rootfs_dir=None):
    """(message, fds) for the sandbox: the rootfs tree, an O_PATH fd of the
    rootfs directory (`rootfs_dir` if given), one tree per bind mount (by
    index in spec.mounts) and host device nodes to bind when the container
    cannot mknod (user namespace)."""
    fds = []
    binds = []
    try:
        fds.append(m.open_tree(-100, spec.root.path,
                               m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | m.AT_RECURSIVE))
        fds.append(rootfs_dir if rootfs_dir is not None else open_rootfs_dir(spec))
        rootfs_dir = None  # in fds now: closed with them on failure
        for index, mnt in enumerate(spec.mounts):
            options = parse_options(mnt.options, mnt.type)
            if not options.bind:
                continue
            fds.append(open_bind(bind_source(bundle, mnt.source or ""), options))
            binds.append(index)
        devices = []
        for path in device_sources:
            fds.append(m.open_tree(-100, path, m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC))
            devices.append(path)
    except BaseException:
        for fd in fds + ([rootfs_dir] if rootfs_dir is not None else []):
            os.close(fd)
        raise
    return {"binds": binds, "devices": devices}, fds


def open_rootfs_dir(spec):
    """The set-up child's cwd, which its unshare carries into the sandbox's
    mount namespace: opened in the caller's mount namespace."""
    return os.open(spec.root.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def detach_stdio():
    """The engine reads the container's stdout/stderr to EOF: a helper that
    kept them open would hang it (containerd's shim does)."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def run(cid, spec, bundle, sandbox_sock, commit_sock, exit_path, device_sources=()):
    """Body of the gofer process (forked from create; never returns)."""
    code = 0
    try:
        import prctl
        prctl.set_name(NAME)
        prctl.set_proctitle(f"{NAME} {cid}")  # ps shows which container
        detach_stdio()
        close_all_except({0, 1, 2, sandbox_sock.fileno(), commit_sock.fileno()})
        try:
            if spec.process.oom_score_adj is not None:
                _own_oom_score_adj(spec.process.oom_score_adj)
            rootfs_dir = None
            if os.geteuid() != 0:  # unprivileged: open_tree needs a mount namespace of our own
                from runsc_py.idmap import enter_own_namespace
                rootfs_dir = open_rootfs_dir(spec)
                enter_own_namespace()
            msg, fds = open_trees(spec, bundle, device_sources, rootfs_dir)
        except OSError as e:
            from runsc_py.errors import os_error_text
            unix.send(sandbox_sock, {"error": f"gofer: {os_error_text(e)}"})
            os._exit(1)
        except Exception as e:
            unix.send(sandbox_sock, {"error": f"gofer: {e}"})
            os._exit(1)
        unix.send(sandbox_sock, msg, fds)
        for fd in fds:
            os.close(fd)
        if not _committed(commit_sock):
            os._exit(1)
        from runsc_py.state_file import atomic_write
        from sandbox import selfconfine
        selfconfine.confine_gofer()
        serve(sandbox_sock, exit_path, atomic_write)
    except BaseException:
        code = 1
    os._exit(code)


def _own_oom_score_adj(value):
    """Each gofer gets its container's oomScoreAdj: it lives and dies with
    the container, so the OOM killer should weigh them alike."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:  # the error names the field (lowering it needs CAP_SYS_RESOURCE)
        raise OSError(e.errno, e.strerror, f"process.oomScoreAdj {value}") from None


def _committed(commit_sock) -> bool:
    """Until create commits, the gofer lives only as long as the CLI that
    made it: a create killed half-way must leave no process behind."""
    msg, _ = unix.recv(commit_sock)
    commit_sock.close()
    return bool(msg and msg.get("commit"))


def serve(sandbox_sock, exit_path, atomic_write):
    """Wait for the sandbox: record the exit status it reports, then go."""
    import gc
    gc.freeze()  # keep the pages shared with the sandbox: nothing new to collect here
    while True:
        msg, fds = unix.recv(sandbox_sock)
        for fd in fds:
            os.close(fd)
        if msg is None:
            return
        if "exitStatus" in msg:
            atomic_write(exit_path, jsonio.dumps({"exitStatus": msg["exitStatus"]}).encode())
            unix.send(sandbox_sock, {"ok": True})
