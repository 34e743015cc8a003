"""What the two ways of launching a container share: `create`'s own
sandbox (container.create) and a pod member's, forked by the pod's sandbox
(container.member). Both fork the container's gofer here, listen on its
control socket and connect the console; `Launched` holds the processes of a
create in progress and undoes them."""

import os

from ..errors import Failure, os_error_text
from ..linux import proc, signals, unix


def cgroup_layout():
    """The host's cgroup hierarchies under /sys/fs/cgroup, for the `cgroup`
    mount type: [[name, fstype, super options]]."""
    from .. import cgroups
    return cgroups.current_host().layout()


class Launched:
    """The processes of a create in progress, and how to undo them."""

    def __init__(self):
        self.gofer_pid = None
        self.setup_pid = None         # the sandbox, when it is our child
        self.sandbox_pid = None
        self.sync = None
        self.commit = None
        self.cgroup = None            # the container's cgroups.Cgroup
        self.join_on_start = False    # the sandbox process joins the cgroup when it reports
        self.hooks_began = False      # the creation hooks were run (a failure then runs poststop)

    def kill(self):
        for pid in (self.sandbox_pid, self.setup_pid, self.gofer_pid):
            if pid:
                try:
                    os.kill(pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in (self.setup_pid, self.gofer_pid):  # our children: reap them
            if pid:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        if self.sandbox_pid and self.sandbox_pid != self.setup_pid:
            # A pod member's, not our child; wait until it is gone so
            # nothing of it outlives the failed create.
            fd = proc.pidfd_for(self.sandbox_pid, None)
            if fd is not None:
                try:
                    proc.wait_pidfd(fd, 10)
                finally:
                    os.close(fd)
        for sock in (self.sync, self.commit):
            if sock is not None:
                sock.close()

    def commit_all(self):
        for sock in (self.sync, self.commit):
            try:
                unix.send(sock, {"commit": True})
            except OSError:
                pass  # the process is gone; `state` will say stopped
            sock.close()
        self.sync = self.commit = None


def fork_gofer(spec, bundle, sf, gofer_end, commit_end, others):
    from gofer import main as gofer
    from sandbox.rootfs import device_sources
    sources = device_sources(spec)
    freeze_heap()
    pid = os.fork()
    if pid == 0:
        for sock in others:
            sock.close()
        gofer.run(sf.cid, spec, bundle, gofer_end, commit_end, sf.path("exit"), sources)
    return pid


def freeze_heap():
    """Before the first fork: everything allocated so far moves to the
    collector's permanent generation, so no collection in the gofer or the
    sandbox walks (and thereby copies) the pages they share with each other
    (Python's gc.freeze, for fork-based servers)."""
    import gc
    gc.freeze()


def listen_control(sf):
    """The container's control socket, served by its sandbox process: made
    under umask 077, so only its owner (the runtime's) and root can
    connect whatever the caller's umask (connect(2) needs write permission
    on the socket); the sandbox checks the peer's uid too."""
    try:
        os.unlink(sf.path("sock"))
    except FileNotFoundError:
        pass
    old = os.umask(0o077)
    try:
        return unix.listen(sf.path("sock"))
    finally:
        os.umask(old)


def connect_console(spec, console_socket):
    """A connection to --console-socket when the process wants a terminal."""
    if not spec.process.terminal:
        return None
    if not console_socket:
        raise Failure("process.terminal is true: --console-socket is required")
    try:
        return unix.connect_stream(console_socket, 10)
    except OSError as e:
        raise Failure(f"--console-socket {console_socket}: {os_error_text(e)}") from None
