"""The set-up of the sandbox process: its namespaces.

Forked from `create`, this process becomes the sandbox. It joins the
namespaces config.json names by path, creates the others (user first, so
the rest belong to it; its uid/gid maps are written by the CLI, which is
outside it), all but the pid namespace, which the sandbox makes or joins
for its children only (sandbox.init): the sandbox stays in the runtime's
pid namespace, outside the container.

A pod member's set-up is forked by the pod's sandbox instead
(sandbox.members): its namespaces to join arrive as fds (their paths are
host paths), and its sandbox process is a child of the pod's sandbox.
"""

import os

from runsc_py.linux import fs, ns
from runsc_py.linux import unix

# Imported here, by create, not in the set-up child: once the child is in a
# user namespace whose root is not the host's, the host's Python library
# (under /root, mode 0700) may be out of its reach.
from . import init


class Launch:
    """Everything the set-up child and the sandbox need, prepared by the CLI."""

    def __init__(self, **kw):
        self.spec = kw["spec"]
        self.cid = kw["cid"]
        self.sync = kw["sync"]                  # socket to the CLI
        self.gofer = kw["gofer"]                # socket to the gofer
        self.control = kw["control"]            # listening control socket
        self.console = kw.get("console")        # connected console socket or None
        self.preserve_fds = kw.get("preserve_fds", 0)
        self.no_pivot = kw.get("no_pivot", False)
        self.cgroup_layout = kw.get("cgroup_layout", [])
        self.confinement = kw.get("confinement")  # prepared by sandbox.confine, or None
        self.member = kw.get("member", False)   # a pod member, set up inside the pod's sandbox
        self.ns_fds = kw.get("ns_fds", {})      # type -> fd of namespaces to join (members)
        self.oom_score_adj = kw.get("oom_score_adj")  # the sandbox process's value, if it sets one
        self.parent_pid = kw.get("parent_pid")  # a member's: the pod's sandbox
        self.pod_sandbox = kw.get("pod_sandbox", False)  # a pod's sandbox: it takes members
        self.pid_ns = None                      # fd of a pid namespace to join, or None
        # O_PATH fd of the runtime's /proc: the sandbox is outside the pid
        # namespace of the /proc mounted in its (the container's) mount tree.
        self.proc_fd = kw.get("proc_fd")
        self.owner_uid = kw.get("owner_uid", 0)  # the runtime's uid: it (and root) may control the sandbox
        self.trees = None                       # the gofer's message, received at set-up
        self.tree_fds = []

    def proc_opener(self, path, flags):
        """An `opener` for open() of a path in the runtime's /proc."""
        return os.open(path, flags | os.O_CLOEXEC, dir_fd=self.proc_fd)


def _fail(launch, msg):
    try:
        unix.send(launch.sync, {"error": msg})
    finally:
        os._exit(1)


def _join(launch, namespaces):
    """setns into every namespace given by path, checking its type first:
    runtime-spec config-linux.md, namespaces: "If a path is specified, but
    the namespace is not of the type specified, an error is generated"."""
    for entry in namespaces:
        if not entry.path:
            continue
        flag, name = ns.TYPES[entry.type]
        fd = launch.ns_fds.pop(entry.type, None)
        if fd is None:
            try:
                fd = open_namespace(entry.type, entry.path)
            except OSError as e:
                raise SetupError(f"linux.namespaces: {entry.type} namespace {entry.path}: "
                                 f"{(e.strerror or str(e)).lower()}") from None
        try:
            try:
                actual = ns.nstype_of(fd)
            except OSError:
                raise SetupError(f"linux.namespaces: {entry.path} is not a namespace") from None
            if actual != flag:
                raise SetupError(f"linux.namespaces: {entry.path} is not a {entry.type} namespace")
            if entry.type == "pid":
                # Joined for its children by the sandbox, which stays outside.
                launch.pid_ns, fd = fd, None
                continue
            # setns into the namespace one is in fails for some types (user):
            # a pod member usually names the pod's own namespaces.
            if os.fstat(fd).st_ino != os.stat(f"self/ns/{name}", dir_fd=launch.proc_fd).st_ino:
                ns.setns(fd, flag, path=entry.path)
        finally:
            if fd is not None:
                os.close(fd)


class SetupError(Exception):
    pass


def open_namespace(kind, path):
    """An fd of the namespace at `path`. The pid and time namespaces of a
    runtime sandbox (`/proc/<state pid>/ns/pid`, how engines name another
    container's or the pod's namespace) are those of its children: the
    sandbox is outside its container's pid namespace, and its container's
    time namespace is its children's."""
    if kind in ("pid", "time"):
        name = path.rstrip("/")
        if name.startswith("/proc/") and name.endswith(f"/ns/{kind}"):
            try:
                with open(name[:-len(f"ns/{kind}")] + "comm", "rb") as f:
                    comm = f.read().strip()
            except OSError:
                comm = b""
            if comm == SANDBOX_COMM:
                path = f"{name}_for_children"
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


# The kernel keeps the first 15 bytes of a process name.
SANDBOX_COMM = b"runsc-py-sandbox"[:15]


def _user_namespace(launch, wanted):
    """Create the user namespace and have the CLI write its id maps."""
    if "user" not in wanted:
        return
    ns.unshare(ns.CLONE_NEWUSER)
    unix.send(launch.sync, {"op": "idmap", "pid": os.getpid()})
    msg, _ = unix.recv(launch.sync)
    if not msg or not msg.get("ok"):
        raise SetupError((msg or {}).get("error", "writing the user namespace id maps failed"))
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def _time_offsets(launch, offsets):
    """runtime-spec linux.timeOffsets, written before the first process of
    the new time namespace exists."""
    if not offsets:
        return
    lines = []
    for clock, value in offsets.items():
        lines.append(f"{clock} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n")
    with open("self/timens_offsets", "w", opener=launch.proc_opener) as f:
        f.write("".join(lines))


def _await_cgroup(launch):
    """Wait until the CLI has put this process in the container's cgroup:
    the cgroup namespace made below takes this process's cgroup as its root."""
    msg, _ = unix.recv(launch.sync)
    if not msg or not msg.get("go"):
        raise SetupError("the runtime went away before the container's cgroup was joined")


def _receive_trees(launch):
    msg, fds = unix.recv(launch.gofer)
    if msg is None:
        raise SetupError("gofer exited during set-up")
    if "error" in msg:
        raise SetupError(msg["error"])
    launch.trees, launch.tree_fds = msg, fds
    return fds[1]  # O_PATH fd of the rootfs directory


def run(launch: Launch):
    """Body of the set-up, which becomes the sandbox (never returns)."""
    try:
        os.setsid()
        if launch.proc_fd is None:
            launch.proc_fd = os.open("/proc", fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if not launch.member:
            _await_cgroup(launch)
        rootfs_dir_fd = _receive_trees(launch)
        namespaces = launch.spec.linux.namespaces
        wanted = {n.type for n in namespaces if not n.path}
        _join(launch, [n for n in namespaces if n.type == "user"])
        _user_namespace(launch, wanted)
        _join(launch, [n for n in namespaces if n.type != "user"])
        # The cwd is carried into the new mount namespace: PID 1 attaches
        # the rootfs over it without naming a host path. A member is in the
        # pod's root, where the host's directory is out of reach: its root
        # is attached over the pod's "/" in its own mount namespace.
        # Without a mount namespace of its own the root is attached nowhere
        # (rootfs.enter_root); the cwd then holds no host directory.
        if "mount" in wanted and not launch.member:
            os.fchdir(rootfs_dir_fd)
        else:
            os.chdir("/")
        flags = 0
        for kind in wanted - {"user", "pid"}:
            flags |= ns.TYPES[kind][0]
        ns.unshare(flags)
        if "time" in wanted:
            _time_offsets(launch, launch.spec.linux.time_offsets)
    except SetupError as e:
        _fail(launch, str(e))
    except OSError as e:
        _fail(launch, f"namespaces: {(e.strerror or str(e)).lower()}")
    except BaseException as e:
        _fail(launch, f"namespaces: {e}")
    init.run(launch, "new" if "pid" in wanted else launch.pid_ns)
