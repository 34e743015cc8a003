"""Pod members, on the pod sandbox's side.

A member's `create` sends the sandbox one control request, `member`, with
the member's spec and, as fds: the socket to the member's gofer, the
member's listening control socket, the caller's stdin/stdout/stderr, the
console socket (if the process wants a terminal), the --preserve-fds and
the namespaces it joins. The sandbox forks the member's set-up child and
goes back to its loop at once; the set-up child continues on the request's
connection with the ordinary create protocol (sandbox.setup.run), and the
member's own sandbox process serves the member from then on. Everything
needed here was imported by the pod's `create` before pivot_root.
"""

import fcntl
import os

from runsc_py import jsonio
from runsc_py.linux import signals, unix
from runsc_py.linux.fs import close_all_except
from specs.config import parse_config

from . import confine, setup


def spawn(msg, fds, conn):
    """Fork the member's set-up child; returns its pid (the sandbox reaps it)."""
    pid = os.fork()
    if pid == 0:
        try:
            launch = _launch(msg, fds, conn)
        except BaseException as e:
            try:
                os.write(2, f"runsc-py-sandbox: member set-up: {e}\n".encode())
            finally:
                os._exit(1)
        setup.run(launch)
    return pid


def _launch(msg, fds, conn):
    """Turn the request into the member's Launch, in the forked child."""
    signals.set_wakeup_fd(-1)  # the pod sandbox's wakeup pipe is not ours
    gofer, control, stdio = fds[0], fds[1], fds[2:5]
    rest = fds[5:]
    console = rest.pop(0) if msg["console"] else None
    count = msg["preserveFds"]
    preserved, ns_fds = rest[:count], rest[count:]
    fixed = _renumber([conn.detach(), gofer, control] + ([console] if console is not None else []),
                      stdio, preserved)
    conn_fd, gofer, control = fixed[:3]
    console = fixed[3] if console is not None else None
    for fd in fixed:
        os.set_blocking(fd, True)  # the sandbox put a timeout on the connection
    ns_fds = [_high(fd, 3 + count) for fd in ns_fds]
    close_all_except(set(range(3 + count)) | {conn_fd, gofer, control} | set(ns_fds)
                     | ({console} if console is not None else set()))
    spec = parse_config(jsonio.dumps(msg["spec"]), msg["bundle"])
    own = spec.process.oom_score_adj
    return setup.Launch(
        spec=spec, cid=msg["cid"], sync=unix.Socket(fileno=conn_fd),
        gofer=unix.Socket(fileno=gofer), control=unix.Socket(fileno=control),
        console=unix.Socket(fileno=console) if console is not None else None,
        preserve_fds=count, no_pivot=msg["noPivot"], cgroup_layout=msg["cgroupLayout"],
        confinement=confine.prepare(spec.process, spec.linux), member=True,
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
