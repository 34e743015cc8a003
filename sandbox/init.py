"""The sandbox: PID 1 of the container.

Set-up (before `create` returns): receive the gofer's trees, build the root,
make the terminal, report ready, and wait for the CLI to commit the create
(if the CLI dies first, the sandbox exits: a killed create leaves nothing).

Then it serves until the container stops: `start` forks the workload; every
catchable signal it receives is forwarded to the workload; it reaps every
child (orphans of the container are reparented to it); when the workload
exits it reports the status to the gofer, which records it, and exits with
the same code, or 128+signal — what conmon and containerd report for a
signalled process. When PID 1 of a pid namespace exits, the kernel kills the
rest of the namespace.

Everything the sandbox will ever import is imported at the top of this
module: after pivot_root the host's Python library is out of reach.
"""

import os
import select

from runsc_py.hooks import run_hooks
from runsc_py.linux import fs, signals, tty, unix
from runsc_py.linux.libc import check, libc
from runsc_py.rootless import in_user_namespace

from . import members
from . import rootfs
from . import workload

NAME = "runsc-py-sandbox"

# Signals whose default action ends a process: received before the workload
# runs, they end the container (what runc's waiting init does).
_IGNORED_BY_DEFAULT = {0, signals.SIGCHLD, signals.SIGCONT, signals.SIGURG, signals.SIGWINCH}


class Sandbox:
    def __init__(self, launch, new_pid_ns):
        self.launch = launch
        self.spec = launch.spec
        self.new_pid_ns = new_pid_ns
        self.workload = None
        self.terminal_slave = None
        self.wakeup_r = None

    # -- set-up -------------------------------------------------------------
    def build(self):
        msg, fds = self.launch.trees, self.launch.tree_fds
        tree, rootfs_dir = fds[0], fds[1]
        os.close(rootfs_dir)
        binds = dict(zip(msg["binds"], fds[2:2 + len(msg["binds"])]))
        devices = dict(zip(msg["devices"], fds[2 + len(msg["binds"]):]))
        spec = self.spec
        linux = spec.linux
        # read before pivot_root (/proc/self/uid_map)
        user_ns = any(n.type == "user" for n in linux.namespaces) or in_user_namespace()
        try:
            rootfs.isolate_from_host(tree, binds, spec.mounts, devices.values())
            rootfs.attach_root(tree)
            rootfs.mount_all(tree, spec.mounts, binds, self.launch.cgroup_layout)
            if spec.process is not None:
                rootfs.ensure_cwd(tree, spec.process.cwd)
            self.creation_hooks()
            rootfs.enter_root(tree, self.launch.no_pivot)
        finally:
            os.close(tree)
            for fd in binds.values():
                os.close(fd)
        root_fd = os.open("/", fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            rootfs.make_devices(linux.devices, devices, can_mknod=not user_ns)
            rootfs.write_sysctls(linux.sysctl)
            rootfs.mask_paths(root_fd, linux.masked_paths)
            rootfs.readonly_paths(root_fd, linux.readonly_paths)
            # Last of the mounts: an unbindable root could not be bound from.
            rootfs.set_root_propagation(linux.rootfs_propagation)
            if spec.hostname is not None:
                _set_hostname(spec.hostname)
            if spec.domainname is not None:
                _set_domainname(spec.domainname)
            if spec.root.readonly:
                rootfs.make_root_readonly()
        finally:
            os.close(root_fd)
            for fd in devices.values():
                os.close(fd)
        if spec.process is not None:
            workload.check_executable(spec.process)
            if spec.process.terminal:
                self.terminal_slave = self.make_terminal()
                # The process's stdio is the terminal. The caller's stdio is
                # then only create's own output, which containerd's shim
                # reads to EOF: holding it would hang the shim.
                _stdio_to_null()

    def creation_hooks(self):
        """prestart and createRuntime run in the runtime namespace, so the
        CLI runs them; createContainer runs here, in the container's
        namespaces, with its path resolved in the runtime's mount tree
        (still visible before pivot_root)."""
        hooks = self.spec.hooks
        if not (hooks.prestart or hooks.create_runtime or hooks.create_container):
            return
        unix.send(self.launch.sync, {"op": "hooks"})
        reply, _ = unix.recv(self.launch.sync)
        if not reply or "error" in reply:
            raise SandboxError((reply or {}).get("error", "create hooks: the runtime went away"))
        run_hooks("createContainer", hooks.create_container, reply["state"])

    def make_terminal(self):
        """A pty inside the container; the master goes to the console
        socket, the slave to the workload."""
        if self.launch.console is None:
            raise SandboxError("process.terminal is true but no --console-socket was given")
        slave = tty.hand_to_console(self.launch.console, self.spec.process.console_size)
        self.launch.console = None
        return slave

    def drop_inherited_fds(self):
        """The caller's fds (containerd leaks its socket as fd 3) do not
        belong in the container; only the --preserve-fds range stays."""
        keep = {0, 1, 2, self.launch.sync.fileno(), self.launch.gofer.fileno(),
                self.launch.control.fileno()}
        if self.launch.console is not None:
            keep.add(self.launch.console.fileno())
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
        """Forward to the workload. Before there is one, a signal whose
        default action ends a process ends the container: the exit status
        to finish with is returned."""
        if self.workload is not None:
            try:
                os.kill(self.workload, signum)
            except ProcessLookupError:
                pass
            return None
        if signum in _IGNORED_BY_DEFAULT:
            return None
        return 128 + signum

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.workload:
                code = os.waitstatus_to_exitcode(status)
                self.finish(128 - code if code < 0 else code)

    def on_control(self):
        try:
            conn, _ = self.launch.control.accept()
        except OSError:
            return
        exit_code = None
        with conn:
            conn.settimeout(10)
            try:
                msg, fds = unix.recv(conn)
                if msg is not None and msg.get("op") == "member":
                    # The member's set-up child takes the connection over.
                    members.spawn(msg, fds, conn)
                for fd in fds:
                    os.close(fd)
                if msg is not None and msg.get("op") != "member":
                    reply, exit_code, reply_fds = self.handle(msg)
                    try:
                        unix.send(conn, reply, reply_fds)
                    finally:
                        for fd in reply_fds:
                            os.close(fd)
            except (OSError, ValueError):
                pass  # the caller went away; a decided exit still happens
        if exit_code is not None:
            self.finish(exit_code)  # after the reply: the caller learns it worked

    def handle(self, msg):
        """(reply, exit status to finish with after replying or None, fds to send)."""
        op = msg.get("op")
        if op == "start":
            return self.start(msg.get("state") or {})
        if op == "signal":
            return {"ok": True}, self.deliver(int(msg["signal"])), []
        if op == "ping":
            return {"ok": True, "workload": self.workload}, None, []
        if op == "namespaces":
            return _own_namespaces(msg.get("names") or [])
        return {"error": f"unknown request {op!r}"}, None, []

    def start(self, state):
        """(reply, None, fds): the reply names the workload's pid here; the
        seccomp listener fd, if the filter wants one, goes with it."""
        if self.workload is not None:
            return {"error": "container already started"}, None, []
        process = self.spec.process
        if process is None:
            return {"error": "config.json has no process to start"}, None, []
        hooks = self.spec.hooks.start_container

        def start_container_hooks():
            # runtime-spec: startContainer hooks run "after the start operation
            # is called but before the user-specified program command is executed",
            # in the container namespace.
            run_hooks("startContainer", hooks, state)

        pid, error, listener = workload.spawn(process, self.launch.confinement,
                                              preserve_fds=self.launch.preserve_fds,
                                              terminal_slave=self.terminal_slave,
                                              before_exec=start_container_hooks if hooks else None)
        if self.terminal_slave is not None:
            os.close(self.terminal_slave)
            self.terminal_slave = None
        self.workload = pid
        fds = [listener] if listener is not None else []
        if error:
            return {"error": error}, None, fds
        return {"ok": True, "pid": pid}, None, fds

    def stop_all(self):
        if self.workload is not None:
            try:
                os.kill(self.workload, signals.SIGKILL)
            except ProcessLookupError:
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
    """Handlers exist so that PID 1 receives signals at all (the kernel drops
    signals without a handler sent to a pid namespace's init); the wakeup fd
    carries them to the loop."""


def _stdio_to_null():
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _write_own_oom_score_adj(value):
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise SandboxError(f"process.oomScoreAdj {value}: {(e.strerror or str(e)).lower()}") from None


def _set_hostname(name):
    data = name.encode()
    check(libc.sethostname(data, len(data)))


def _set_domainname(name):
    data = name.encode()
    check(libc.setdomainname(data, len(data)))


def _describe(e):
    if isinstance(e, OSError):
        text = (e.strerror or str(e)).lower()
        return f"{text}: {e.filename}" if e.filename else text
    return str(e) or type(e).__name__


def _own_namespaces(names):
    """(reply, None, fds) with this process's namespaces, for an exec whose
    caller may not open /proc/PID/ns of this process: not dumpable, it is
    reachable there only with CAP_SYS_PTRACE on the host (rootless)."""
    fds, sent = [], []
    try:
        for name in names:
            if name not in _NAMESPACE_NAMES:
                continue
            fds.append(os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
            sent.append(name)
    except OSError as e:
        for fd in fds:
            os.close(fd)
        return {"error": f"namespaces: {(e.strerror or str(e)).lower()}"}, None, []
    return {"ok": True, "names": sent}, None, fds


# /proc/self/ns names the exec and ps clients may ask for
_NAMESPACE_NAMES = ("user", "mnt", "ipc", "uts", "net", "cgroup", "time", "time_for_children", "pid",
                    "pid_for_children")


def run(launch, new_pid_ns):
    """Body of the sandbox process (never returns)."""
    # First message: the runtime learns this process's pid from it (the
    # kernel attaches it, translated into the runtime's pid namespace).
    unix.send(launch.sync, {"started": True})
    sandbox = Sandbox(launch, new_pid_ns)
    try:
        import prctl
        prctl.set_name(NAME)
        prctl.set_proctitle(f"{NAME} {launch.cid}")  # ps shows which container
        # Not dumpable: processes of the container cannot open this
        # process's /proc/PID/exe or fds (the CVE-2019-5736 class).
        prctl.set_dumpable(False)
        if not new_pid_ns:
            # Not PID 1 of its own namespace: become the reaper of the
            # workload's orphans anyway.
            prctl.set_child_subreaper(True)
        if launch.oom_score_adj is not None:
            _write_own_oom_score_adj(launch.oom_score_adj)
        sandbox.drop_inherited_fds()
        sandbox.build()
        sandbox.install_signals()
    except BaseException as e:
        try:
            unix.send(launch.sync, {"error": _describe(e)})
        finally:
            os._exit(1)
    unix.send(launch.sync, {"ready": True})
    msg, _ = unix.recv(launch.sync)
    if not msg or not msg.get("commit"):
        os._exit(1)
    launch.sync.close()
    import gc
    gc.freeze()
    try:
        sandbox.serve()
    except BaseException:
        sandbox.stop_all()
        os._exit(255)
