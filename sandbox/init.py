"""The sandbox: the parent of the container's PID 1, outside the container.

It lives in the container's namespaces except the pid namespace: it makes
that one (or joins it) for its children only, then forks the container's
PID 1 (sandbox.pid1), which builds the root and waits for `start`. No
process inside the container can see the sandbox: it has no /proc entry
there.

Set-up (before `create` returns): fork PID 1, wait until it has built the
root, report ready, and wait for the CLI to commit the create (if the CLI
dies first, the sandbox exits, and PID 1 with it: a killed create leaves
nothing).

Then it serves until the container stops: `start` lets PID 1 exec the
workload; every catchable signal the sandbox receives is forwarded to
PID 1, where the kernel applies a namespace init's rule (runc's semantics:
a signal PID 1 has no handler for is dropped, SIGKILL and SIGSTOP are not);
when PID 1 exits the sandbox reports the status to the gofer, which records
it, and exits with the same code, or 128+signal — what conmon and
containerd report for a signalled process. When PID 1 of a pid namespace
exits, the kernel kills the rest of the namespace; orphans inside the
container are PID 1's to reap, as with runc.

Everything the sandbox will ever import is imported at the top of this
module: after pivot_root the host's Python library is out of reach.
"""

import os
import select

import prctl

from runsc_py import protocol
from runsc_py.linux import fs, ns, signals, unix

from . import members
from . import pid1
from . import selfconfine
from . import workload

NAME = "runsc-py-sandbox"

# Signals whose default action ends a process: received before the workload
# runs, they end the container (what runc's waiting init does).
_IGNORED_BY_DEFAULT = {0, signals.SIGCHLD, signals.SIGCONT, signals.SIGURG, signals.SIGWINCH}


class Sandbox:
    def __init__(self, launch):
        self.launch = launch
        self.spec = launch.spec
        self.init_pid = None      # host pid of the container's PID 1
        self.init_channel = None  # socket to it until it has exec'd
        self.started = False
        self.wakeup_r = None
        self.own_pid_ns = self.children_pid_ns = None  # a pod's sandbox's (enter_pid_namespace)
        self._peer_uids = False                         # not computed yet (peer_uids)
        self.ns_fds = {}                                # /proc/self/ns name -> fd (open_namespaces)

    # -- set-up -------------------------------------------------------------
    def enter_pid_namespace(self, pid_ns):
        """Make or join the pid namespace of the sandbox's children: the
        sandbox stays in the runtime's (setns and unshare of a pid
        namespace affect only the children a process forks afterwards).
        A pod's sandbox keeps both namespaces at hand: its members'
        sandboxes are forked into the runtime's (members.spawn)."""
        if self.launch.pod_sandbox:
            self.own_pid_ns = os.open("self/ns/pid", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.launch.proc_fd)
        if pid_ns == "new":
            ns.unshare(ns.CLONE_NEWPID)
        elif pid_ns is not None:
            try:
                ns.setns(pid_ns, ns.CLONE_NEWPID, path="pid")
            finally:
                os.close(pid_ns)
        else:
            # No pid namespace of its own: become the reaper of the
            # workload's orphans anyway.
            prctl.set_child_subreaper(True)

    def fork_init(self):
        """Fork PID 1 and wait until it has built the root."""
        launch = self.launch
        ours, theirs = unix.pair()
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            ours.close()
            os.close(null)
            pid1.run(launch, theirs)
        self.init_pid, self.init_channel = pid, ours
        if launch.pod_sandbox:  # (a new pid namespace has no name until its first process)
            self.children_pid_ns = os.open("self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC,
                                           dir_fd=launch.proc_fd)
        theirs.close()
        for fd in launch.tree_fds:
            os.close(fd)
        launch.tree_fds = []
        if launch.console is not None:
            launch.console.close()
            launch.console = None
        # The caller's stdio belongs to the process, not to the sandbox:
        # engines read the container's output to EOF (containerd's shim
        # reads create's own output so too).
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        msg, _ = unix.recv(ours)
        if not msg or not msg.get("built"):
            raise SandboxError("the container's init exited during set-up")

    def open_namespaces(self):
        """Open this process's namespaces, its children's included, for the
        `namespaces` request: an exec or ps caller without CAP_SYS_PTRACE
        on the host (rootless) may not open /proc/PID/ns of this
        non-dumpable process. Opened once PID 1 exists (a new pid namespace
        has no name until its first process) and before the seccomp filter,
        which allows no open: a request only dups them."""
        for name in protocol.NAMESPACE_NAMES:
            try:
                self.ns_fds[name] = os.open(f"self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC,
                                            dir_fd=self.launch.proc_fd)
            except FileNotFoundError:
                pass  # the kernel lacks this namespace type

    def drop_inherited_fds(self):
        """The caller's fds (containerd leaks its socket as fd 3) do not
        belong in the container; only the --preserve-fds range stays."""
        keep = {0, 1, 2, self.launch.sync.fileno(), self.launch.gofer.fileno(),
                self.launch.control.fileno()}
        if self.launch.console is not None:
            keep.add(self.launch.console.fileno())
        if isinstance(self.launch.pid_ns, int):
            keep.add(self.launch.pid_ns)
        keep.add(self.launch.proc_fd)
        keep.update(range(3, 3 + self.launch.preserve_fds))
        keep.update(self.launch.tree_fds)
        fs.close_all_except(keep)

    def install_signals(self):
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup_r = r
        signals.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in workload.CATCHABLE:
            try:
                signals.signal(sig, _noop)
            except (OSError, ValueError):
                pass

    # -- serving -------------------------------------------------------------
    def serve(self):
        poller = select.poll()
        control = self.launch.control
        gofer = self.launch.gofer
        for fd in (self.wakeup_r, control.fileno(), gofer.fileno()):
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _events in poller.poll():
                if fd == self.wakeup_r:
                    self.on_signals()
                elif fd == control.fileno():
                    self.on_control()
                elif fd == gofer.fileno():
                    # The gofer went away: the container cannot keep running
                    # without its file system broker.
                    self.stop_all()
                    os._exit(128 + signals.SIGKILL)

    def on_signals(self):
        try:
            data = os.read(self.wakeup_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signals.SIGCHLD:
                self.reap()
            else:
                code = self.deliver(signum)
                if code is not None:
                    self.finish(code)
        self.reap()

    def deliver(self, signum):
        """Forward to PID 1 once it runs the workload. Before that, a signal
        whose default action ends a process ends the container: the exit
        status to finish with is returned."""
        if self.started:
            try:
                os.kill(self.init_pid, signum)
            except ProcessLookupError:
                pass
            return None
        if signum in _IGNORED_BY_DEFAULT:
            return None
        return 128 + signum

    def reap(self):
        """Collect exited children: PID 1 (whose status is the
        container's), a pod's members' sandboxes and, without a pid
        namespace of its own, the workload's orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                code = os.waitstatus_to_exitcode(status)
                self.finish(128 - code if code < 0 else code)

    def on_control(self):
        """One request on the control socket. Its peer is not trusted: a
        process of another uid is refused, and a request that is not valid
        (protocol.parse_request) gets an error reply and changes nothing."""
        try:
            conn, _ = self.launch.control.accept()
        except OSError:
            return
        exit_code = None
        fds = []
        with conn:
            conn.settimeout(10)
            try:
                data, fds = unix.recv_bytes(conn, protocol.MAX_REQUEST)
                if not data:
                    return
                try:
                    reply, exit_code, reply_fds = self.request(conn, data, fds)
                except Exception as e:  # a bug of ours must not end the container
                    reply, exit_code, reply_fds = {"error": f"internal error: {e!r}"}, None, []
                if reply is not None:
                    try:
                        unix.send(conn, reply, reply_fds)
                    finally:
                        for fd in reply_fds:
                            os.close(fd)
            except OSError:
                pass  # the caller went away; a decided exit still happens
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass  # taken over by a member's sandbox (closed here: its copy stays)
        if exit_code is not None:
            self.finish(exit_code)  # after the reply: the caller learns it worked

    def request(self, conn, data, fds):
        """(reply or None if the connection was handed over, exit status to
        finish with after replying or None, fds to send)."""
        _pid, uid, _gid = unix.peer_credentials(conn)
        allowed = self.peer_uids()
        if allowed is not None and uid not in allowed:
            return {"error": f"uid {uid} may not control this container"}, None, []
        try:
            msg = protocol.parse_request(data)
            if msg["op"] == protocol.MEMBER:
                if len(fds) != protocol.member_fd_count(msg):
                    raise protocol.BadRequest("'member' request: wrong number of fds")
                # The member's sandbox takes the connection over.
                members.spawn(msg, fds, conn, self.own_pid_ns, self.children_pid_ns, self.launch)
                return None, None, []
            if fds:
                raise protocol.BadRequest(f"{msg['op']!r} request: carries fds")
        except (protocol.BadRequest, members.MemberRefused) as e:
            return {"error": str(e)}, None, []
        return self.handle(msg)

    def peer_uids(self):
        """The uids, as this process's user namespace names them, that may
        send requests: root and the runtime's owner. None if neither is
        mapped here (a user namespace without them): then the socket's
        mode (0600, the runtime owner's) is the check, made by the kernel
        in the host's terms."""
        if self._peer_uids is False:
            self._peer_uids = _mapped_uids(self.launch, {0, self.launch.owner_uid})
        return self._peer_uids

    def handle(self, msg):
        """(reply, exit status to finish with after replying or None, fds to send)."""
        op = msg["op"]
        if op == protocol.START:
            return self.start(msg.get("state") or {})
        if op == protocol.SIGNAL:
            return dict(protocol.OK), self.deliver(msg["signal"]), []
        if op == protocol.NAMESPACES:
            return self.namespaces(msg["names"])
        return {"ok": True, "workload": self.init_pid if self.started else None}, None, []

    def namespaces(self, names):
        """(reply, None, fds): copies of the namespace fds asked for, in
        the order of the reply's "names" (those the kernel lacks left out)."""
        sent = [name for name in dict.fromkeys(names) if name in self.ns_fds]
        fds = []
        try:
            for name in sent:
                fds.append(os.dup(self.ns_fds[name]))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            return {"error": f"namespaces: {(e.strerror or str(e)).lower()}"}, None, []
        return {"ok": True, "names": sent}, None, fds

    def start(self, state):
        """(reply, None, fds): PID 1 execs the workload; the reply names its
        host pid; the seccomp listener fd, if the filter wants one, goes
        with it."""
        if self.started:
            return {"error": "container already started"}, None, []
        self.started = True
        channel, self.init_channel = self.init_channel, None
        with channel:
            try:
                unix.send(channel, {"op": "start", "state": state})
                error, listener = workload.await_exec(channel)
            except OSError as e:
                error, listener = f"starting the container's process: {(e.strerror or str(e)).lower()}", None
        fds = [listener] if listener is not None else []
        if error:
            return {"error": error}, None, fds
        return {"ok": True, "pid": self.init_pid}, None, fds

    def stop_all(self):
        try:
            os.kill(self.init_pid, signals.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass

    def finish(self, code):
        """Record the exit status through the gofer, then exit with it."""
        try:
            self.launch.gofer.settimeout(5)
            unix.send(self.launch.gofer, {"exitStatus": code})
            unix.recv(self.launch.gofer)
        except OSError:
            pass
        os._exit(code & 0xFF)


class SandboxError(Exception):
    pass


def _noop(_signum, _frame):
    """The wakeup fd carries the signals to the loop."""


def _mapped_uids(launch, host_uids):
    """`host_uids` as this process's user namespace names them (its
    uid_map: inside, outside, count), those it cannot name left out; None
    if none is named."""
    with open("self/uid_map", opener=launch.proc_opener) as f:
        ranges = [tuple(map(int, line.split())) for line in f if line.strip()]
    inside = {first + (uid - outside) for uid in host_uids for first, outside, count in ranges
              if outside <= uid < outside + count}
    return inside or None


def _await_cgroup(launch):
    """A member's sandbox waits until its CLI has put it in the member's
    cgroup, before PID 1 (which inherits it) exists."""
    msg, _ = unix.recv(launch.sync)
    if not msg or not msg.get("go"):
        raise SandboxError("the runtime went away before the container's cgroup was joined")


def _write_own_oom_score_adj(launch, value):
    try:
        with open("self/oom_score_adj", "w", opener=launch.proc_opener) as f:
            f.write(str(value))
    except OSError as e:
        raise SandboxError(f"process.oomScoreAdj {value}: {(e.strerror or str(e)).lower()}") from None


def _describe(e):
    if isinstance(e, OSError):
        text = (e.strerror or str(e)).lower()
        return f"{text}: {e.filename}" if e.filename else text
    return str(e) or type(e).__name__


def run(launch, pid_ns):
    """Body of the sandbox process (never returns). `pid_ns`: "new", the
    fd of the pid namespace to join, or None (the runtime's)."""
    # First message: the runtime learns this process's pid from it (the
    # kernel attaches it, translated into the runtime's pid namespace).
    unix.send(launch.sync, {"started": True})
    sandbox = Sandbox(launch)
    try:
        prctl.set_name(NAME)
        prctl.set_proctitle(f"{NAME} {launch.cid}")  # ps shows which container
        # Not dumpable: nothing else of its uid may open this process's
        # /proc/PID/exe, fds or memory (the CVE-2019-5736 class).
        prctl.set_dumpable(False)
        if launch.member:
            # A pod member's sandbox dies with the pod's (its parent).
            prctl.set_pdeathsig(signals.SIGKILL)
            if os.getppid() != launch.parent_pid:
                os._exit(1)
            _await_cgroup(launch)
        if launch.oom_score_adj is not None:
            _write_own_oom_score_adj(launch, launch.oom_score_adj)
        sandbox.drop_inherited_fds()
        if not launch.pod_sandbox:
            selfconfine.preload()
            with open("sys/kernel/cap_last_cap", opener=launch.proc_opener) as f:
                last_cap = int(f.read())
        sandbox.enter_pid_namespace(pid_ns)
        sandbox.fork_init()
        sandbox.open_namespaces()
        for fd in range(3, 3 + launch.preserve_fds):
            os.close(fd)  # the process's, inherited by PID 1
        sandbox.install_signals()
    except BaseException as e:
        try:
            unix.send(launch.sync, {"error": _describe(e)})
        finally:
            sandbox.stop_all()
            os._exit(1)
    unix.send(launch.sync, {"ready": True})
    msg, _ = unix.recv(launch.sync)
    if not msg or not msg.get("commit"):
        sandbox.stop_all()
        os._exit(1)
    launch.sync.close()
    import gc
    gc.freeze()
    try:
        if not launch.pod_sandbox:
            sandbox.peer_uids()  # (reads /proc: before the filter)
            selfconfine.confine_sandbox(last_cap)
        sandbox.serve()
    except BaseException:
        sandbox.stop_all()
        os._exit(255)
