"""The set-up child: namespaces for the sandbox.

Forked from `create`. It joins the namespaces config.json names by path,
creates the others (user first, so the rest belong to it; its uid/gid maps
are written by the CLI, which is outside it), then forks the sandbox, which
is PID 1 of the new pid namespace, and exits. The sandbox is thereby
orphaned and reparented to the caller's subreaper, like runc's container
init.

A pod member's set-up child is forked by the pod's sandbox instead
(sandbox.members): its namespaces to join arrive as fds (their paths are
host paths), and its sandbox process is reparented to the pod's sandbox.
"""

import os

from runsc_py.linux import ns
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
        self.trees = None                       # the gofer's message, received by the set-up child
        self.tree_fds = []


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
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
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
            # setns into the namespace one is in fails for some types (user):
            # a pod member usually names the pod's own namespaces.
            if os.fstat(fd).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                ns.setns(fd, flag, path=entry.path)
        finally:
            os.close(fd)


class SetupError(Exception):
    pass


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


def _time_offsets(offsets):
    """runtime-spec linux.timeOffsets, written before the first process of
    the new time namespace exists."""
    if not offsets:
        return
    lines = []
    for clock, value in offsets.items():
        lines.append(f"{clock} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n")
    with open("/proc/self/timens_offsets", "w") as f:
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
    """Body of the set-up child (never returns)."""
    try:
        os.setsid()
        if not launch.member:
            _await_cgroup(launch)
        rootfs_dir_fd = _receive_trees(launch)
        namespaces = launch.spec.linux.namespaces
        wanted = {n.type for n in namespaces if not n.path}
        _join(launch, [n for n in namespaces if n.type == "user"])
        _user_namespace(launch, wanted)
        _join(launch, [n for n in namespaces if n.type != "user"])
        # The cwd is carried into the new mount namespace: the sandbox
        # attaches the rootfs over it without naming a host path. A member
        # is in the pod's root, where the host's directory is out of reach:
        # its root is attached over the pod's "/" in its own mount namespace.
        if launch.member:
            os.chdir("/")
        else:
            os.fchdir(rootfs_dir_fd)
        flags = 0
        for kind in wanted - {"user"}:
            flags |= ns.TYPES[kind][0]
        ns.unshare(flags)
        if "time" in wanted:
            _time_offsets(launch.spec.linux.time_offsets)
        if os.fork() == 0:
            init.run(launch, new_pid_ns="pid" in wanted)
        os._exit(0)
    except SetupError as e:
        _fail(launch, str(e))
    except OSError as e:
        _fail(launch, f"namespaces: {(e.strerror or str(e)).lower()}")
    except BaseException as e:
        _fail(launch, f"namespaces: {e}")
