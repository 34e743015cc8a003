"""Pod members, on the pod sandbox's side.

A member's `create` sends the sandbox one control request, `member`, with
the member's spec and, as fds: the socket to the member's gofer, the
member's listening control socket, the caller's stdin/stdout/stderr, the
console socket (if the process wants a terminal), the --preserve-fds and
the namespaces it joins. The sandbox forks the member's sandbox process and
goes back to its loop at once; the child continues on the request's
connection with the ordinary create protocol (sandbox.setup.run), and
serves the member from then on. It stays a child of the pod's sandbox and
dies with it. Everything
needed here was imported by the pod's `create` before pivot_root.
"""

import fcntl
import os

from runsc_py import jsonio
from runsc_py.linux import ns, signals, unix
from runsc_py.linux.fs import close_all_except
from specs.config import parse_config

from . import confine, setup


def spawn(msg, fds, conn, own_pid_ns, children_pid_ns, pod):
    """Fork the member's sandbox; returns its pid (the pod's sandbox reaps it).

    It is forked into the runtime's pid namespace (the pod sandbox's own),
    not the pod's: like every sandbox it stays outside the container's.
    setns into one's own active pid namespace needs CAP_SYS_ADMIN over its
    owner, the host's user namespace: a pod with a user namespace of its
    own cannot have members."""
    if own_pid_ns is None:
        raise MemberRefused("this container is not a pod's sandbox: it takes no members")
    parent = os.getpid()
    try:
        ns.setns(own_pid_ns, ns.CLONE_NEWPID, path="the runtime's pid namespace")
    except OSError as e:
        raise MemberRefused(f"members of a pod with its own user namespace are not supported "
                            f"({(e.strerror or str(e)).lower()})") from None
    pid = None
    try:
        pid = os.fork()
    finally:
        if pid != 0:
            ns.setns(children_pid_ns, ns.CLONE_NEWPID, path="the pod's pid namespace")
    if pid == 0:
        try:
            launch = _launch(msg, fds, conn, parent, pod)
        except BaseException as e:
            try:
                unix.send(conn, {"error": f"member set-up: {e or type(e).__name__}"})
            finally:
                os._exit(1)
        setup.run(launch)
    return pid


class MemberRefused(Exception):
    pass


def _launch(msg, fds, conn, parent, pod):
    """Turn the request into the member's Launch, in the forked child."""
    signals.set_wakeup_fd(-1)  # the pod sandbox's wakeup pipe is not ours
    proc_fd = pod.proc_fd
    gofer, control, stdio = fds[0], fds[1], fds[2:5]
    rest = fds[5:]
    console = rest.pop(0) if msg["console"] else None
    count = msg["preserveFds"]
    preserved, ns_fds = rest[:count], rest[count:]
    fixed = _renumber([conn.detach(), gofer, control, proc_fd] + ([console] if console is not None else []),
                      stdio, preserved)
    conn_fd, gofer, control, proc_fd = fixed[:4]
    console = fixed[4] if console is not None else None
    for fd in fixed[:3] + fixed[4:]:  # (not the O_PATH fd of /proc)
        os.set_blocking(fd, True)  # the sandbox put a timeout on the connection
    ns_fds = [_high(fd, 3 + count) for fd in ns_fds]
    close_all_except(set(range(3 + count)) | {conn_fd, gofer, control, proc_fd} | set(ns_fds)
                     | ({console} if console is not None else set()))
    spec = parse_config(jsonio.dumps(msg["spec"]), msg["bundle"])
    own = spec.process.oom_score_adj
    return setup.Launch(
        spec=spec, cid=msg["cid"], sync=unix.Socket(fileno=conn_fd),
        gofer=unix.Socket(fileno=gofer), control=unix.Socket(fileno=control),
        console=unix.Socket(fileno=console) if console is not None else None,
        preserve_fds=count, no_pivot=msg["noPivot"], cgroup_layout=msg["cgroupLayout"],
        confinement=confine.prepare(spec.process, spec.linux), member=True, parent_pid=parent,
        proc_fd=proc_fd, owner_uid=pod.owner_uid,
        ns_fds=dict(zip(msg["namespaces"], ns_fds)),
        oom_score_adj=own if own is not None else msg["oomScoreAdj"])


def _high(fd, floor):
    """`fd` moved to a number >= floor (close-on-exec); the old one closed."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return new


def _renumber(keep, stdio, preserved):
    """Put the caller's stdio at 0-2 and the preserved fds at 3.. (what the
    member's process will inherit), moving the fds the set-up needs out of
    their way first; returns the new numbers of `keep`."""
    floor = 3 + len(preserved)
    keep = [_high(fd, floor) for fd in keep]
    stdio = [_high(fd, floor) for fd in stdio]
    preserved = [_high(fd, floor) for fd in preserved]
    for target, fd in enumerate(stdio + preserved):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    return keep
