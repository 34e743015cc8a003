"""exec: run another process in a created or running container.

The process joins the container from the host side, as with runc: a child
of the CLI enters the container's namespaces with setns (user first) — the
sandbox's, and for pid and time those of its children (the sandbox is
outside its container's pid namespace) —, forks the process (so it is in
the container's pid namespace), reports its host pid and exits. Detached,
the process is thereby reparented to the caller's subreaper (conmon,
containerd's shim); attached, the CLI is the subreaper, waits for it and
exits with its status.
"""

import os

from .. import status as st
from ..errors import Failure, NotRunning, os_error_text
from ..linux import ns, proc, signals, tty, unix
from . import load

# Namespaces in the order they are entered: the user namespace first, so
# the others are entered with its capabilities; pid last (it only affects
# children).
ORDER = ("user", "mnt", "ipc", "uts", "net", "cgroup", "time", "pid")
_CLONE = {"user": ns.CLONE_NEWUSER, "mnt": ns.CLONE_NEWNS, "ipc": ns.CLONE_NEWIPC,
          "uts": ns.CLONE_NEWUTS, "net": ns.CLONE_NEWNET, "cgroup": ns.CLONE_NEWCGROUP,
          "time": ns.CLONE_NEWTIME, "pid": ns.CLONE_NEWPID}


def _namespace_fds(container):
    """fds of the container's namespaces that differ from ours: those of
    the sandbox, and of its children for pid and time. The sandbox is not
    dumpable: without CAP_SYS_PTRACE on the host (rootless) its
    /proc/PID/ns cannot be opened, and the sandbox sends its own."""
    pid = container.sandbox["pid"]
    fds = []
    try:
        for name in ORDER:
            theirs = f"/proc/{pid}/ns/{_proc_name(name)}"
            try:
                if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
            except FileNotFoundError:
                continue  # the kernel lacks this namespace type
            except PermissionError:
                break
            fds.append((name, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)))
        else:
            return fds
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    for _, fd in fds:
        os.close(fd)
    return _namespaces_from_sandbox(container)


def _proc_name(name):
    """The sandbox's /proc/PID/ns entry for the container's namespace
    `name`: the container's PID 1 is the sandbox's child."""
    return f"{name}_for_children" if name in ("pid", "time") else name


def _namespaces_from_sandbox(container):
    from .control import request
    received = []
    reply = request(container, {"op": "namespaces", "names": [_proc_name(n) for n in ORDER]},
                    fds_out=received)
    names = reply.get("names") or []
    if "error" in reply or len(names) != len(received):
        for fd in received:
            os.close(fd)
        raise Failure(f'exec: the namespaces of container "{container.cid}": '
                      f'{reply.get("error", "the sandbox sent none")}')
    fds = []
    for proc_name, fd in zip(names, received):
        name = proc_name.removesuffix("_for_children")
        try:
            same = os.fstat(fd).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.close(fd)
        else:
            fds.append((name, fd))
    return fds


def _enter(ns_fds):
    for name, fd in ns_fds:
        ns.setns(fd, _CLONE[name], path=name)
        os.close(fd)


def _own_mount_namespace(spec_raw):
    return any(n.get("type") == "mount" and not n.get("path")
               for n in (spec_raw.get("linux") or {}).get("namespaces") or [])


def _container_root(sandbox_pid):
    """An fd of the container's "/" when it is not its mount namespace's
    root (a container without a mount namespace of its own is chrooted
    into a detached tree, sandbox.rootfs.enter_root): the root of the
    sandbox's first child, the container's PID 1 (forked before any pod
    member's sandbox)."""
    try:
        with open(f"/proc/{sandbox_pid}/task/{sandbox_pid}/children") as f:
            init_pid = int(f.read().split()[0])
        return os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (IndexError, ValueError):
        raise Failure("exec: the container's root: its init is gone") from None
    except OSError as e:
        raise Failure(f"exec: the container's root: {os_error_text(e)}") from None


def _child(ns_fds, root_fd, process, report, preserve_fds, console, confinement, cgroup):
    """Body of the joining child (never returns)."""
    from sandbox import workload
    try:
        import prctl
        # Not dumpable until execve: until then this process (and the child
        # it forks) is the host's interpreter with the CLI's memory and
        # environment inside the container's pid namespace, and the
        # container must not open its /proc/PID/exe, environ or fds (the
        # CVE-2019-5736 class). execve makes the new program dumpable again.
        prctl.set_dumpable(False)
        if cgroup is not None:
            # The container's cgroups, while host paths still resolve and
            # before the cgroup namespace is entered; the process forked
            # below inherits them.
            cgroup.enter([os.getpid()])
        _enter(ns_fds)
        if root_fd is not None:
            os.fchdir(root_fd)
            os.chroot(".")
            os.close(root_fd)
        slave = None
        if process.terminal:
            slave = _terminal(console, process.console_size)
        pid, error, listener = workload.spawn(process, confinement, preserve_fds=preserve_fds,
                                              terminal_slave=slave)
        unix.send(report, {"pid": pid, "error": error}, [listener] if listener is not None else [])
        os._exit(0)
    except BaseException as e:
        try:
            text = os_error_text(e) if isinstance(e, OSError) else str(e)
            unix.send(report, {"error": f"exec: {text}"})
        finally:
            os._exit(1)


def _terminal(console, size):
    """A pty of the container's devpts (we are in its mount namespace now);
    the master goes over the console socket."""
    if console is None:
        raise Failure("process.terminal is true: --console-socket is required")
    return tty.hand_to_console(console, size)


def exec_process(root, cid, process, *, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, ignore_paused=False, console_proxy=None) -> int:
    from .create import check_preserved_fds
    check_preserved_fds(preserve_fds)
    container = load(root, cid)
    if container.status == st.PAUSED and not ignore_paused:
        raise Failure(f'container "{cid}" is paused: resume it first (or use --ignore-paused)')
    if not st.can_exec(container.status) and container.status != st.PAUSED:
        raise NotRunning(cid)
    spec = container.sf.read_spec()
    confinement = _prepare(process, spec)
    sb = container.sandbox
    if not detach:
        import prctl
        prctl.set_child_subreaper(True)  # the process comes to us when the joiner exits
    if process.terminal and not console_socket:
        if console_proxy is None:
            raise Failure("process.terminal is true: --console-socket is required")
        console_socket = console_proxy.path
    console = None
    if process.terminal:
        try:
            console = unix.connect_stream(console_socket, 10)
        except OSError as e:
            raise Failure(f"--console-socket {console_socket}: {os_error_text(e)}") from None
    from .. import cgroups
    cgroup = cgroups.load(container.record.get("cgroup"))
    ns_fds = _namespace_fds(container)
    root_fd = None
    try:
        if not proc.is_alive(sb["pid"], sb.get("startTime")):
            raise NotRunning(cid)
        if not _own_mount_namespace(spec):
            root_fd = _container_root(sb["pid"])
    except BaseException:
        for _, fd in ns_fds:
            os.close(fd)
        raise
    report, child_report = unix.pair()
    joiner = os.fork()
    if joiner == 0:
        report.close()
        _child(ns_fds, root_fd, process, child_report, preserve_fds, console, confinement, cgroup)
    for _, fd in ns_fds:
        os.close(fd)
    if root_fd is not None:
        os.close(root_fd)
    child_report.close()
    if console is not None:
        console.close()
    try:
        report.settimeout(60)
        msg, listener = unix.recv(report)
    finally:
        report.close()
        os.waitpid(joiner, 0)
    if not msg:
        raise Failure("exec: the joining process died")
    if msg.get("pid") is None:
        raise Failure(msg.get("error") or "exec failed")
    pid = msg["pid"]
    if msg.get("error"):
        for fd in listener:
            os.close(fd)
        _reap(pid)
        raise Failure(msg["error"])
    if listener:
        from .listener import send_listener
        try:
            send_listener(spec["linux"]["seccomp"], listener[0], pid, container.oci_state())
        except Failure:
            # Its notified system calls would wait for an agent that never
            # got the fd: the process does not stay (start destroys the
            # container in the same case).
            os.kill(pid, signals.SIGKILL)
            _reap(pid)
            raise
    if pid_file:
        from .create import write_pid_file
        write_pid_file(pid_file, pid)
    if console_proxy is not None and console_proxy.used:
        console_proxy.receive()
    if detach:
        return 0
    return _wait_attached(pid, console_proxy)


def _prepare(process, spec_raw):
    """Confinement of the exec'd process, from its own process spec and the
    container's linux section (seccomp, personality) as it was at create."""
    from sandbox.confine import check, prepare
    linux = parse_config_linux(spec_raw)
    check(process, linux)
    return prepare(process, linux)


def parse_config_linux(spec_raw):
    import json
    from specs.config import parse_config
    bundle = "/"
    return parse_config(json.dumps(spec_raw), bundle).linux


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _wait_attached(pid, console_proxy):
    fd = os.pidfd_open(pid)

    def forward(signum, _frame):
        try:
            signals.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            pass

    for sig in signals.valid_signals():
        if sig not in (signals.SIGKILL, signals.SIGSTOP, signals.SIGCHLD):
            try:
                signals.signal(sig, forward)
            except (OSError, ValueError):
                pass
    try:
        if console_proxy is not None and console_proxy.master is not None:
            console_proxy.copy_until(fd)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
