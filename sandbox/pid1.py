"""The container's PID 1 before its execve.

Forked by the sandbox at create, as the first process of the container's
pid namespace (the sandbox itself stays outside it, in the runtime's). It
builds the root from the gofer's trees, runs the createContainer hooks as
its own children (so they are in every namespace of the container, and the
namespace has its init before any of them exists: a pid namespace whose
first process exits is dead), pivots into the root (chroots, without a
mount namespace of its own: rootfs.enter_root), makes the terminal,
tells the sandbox it is built and waits. At `start` it runs the
startContainer hooks, applies the process's confinement and execs
process.args: from then on the workload is PID 1, and `/proc/1` inside is
the workload's (runtime-spec: process.args "MUST NOT" run before start).

It dies with the sandbox (PR_SET_PDEATHSIG): `delete --force` kills the
sandbox, and the kernel then kills this process and, because it is the
namespace's init, every process of the container.
"""

import os
import select

import prctl

from runsc_py.hooks import run_hooks
from runsc_py.linux import fs, signals, tty, unix
from runsc_py.linux.libc import check, libc
from runsc_py.rootless import in_user_namespace

from . import rootfs
from . import workload

NAME = "runsc-py-init"


class InitError(Exception):
    pass


def run(launch, channel):
    """Body of PID 1 (never returns). `channel` is its socket to the sandbox."""
    sent_built = False
    try:
        _detach_from_sandbox(launch, channel)
        terminal_slave = build(launch)
        launch.sync.close()
        unix.send(channel, {"built": True})
        sent_built = True
        msg, _ = unix.recv(channel)
        if not msg or msg.get("op") != "start":
            os._exit(0)  # the sandbox went away: nothing to run
        hooks = launch.spec.hooks.start_container
        state = msg.get("state") or {}

        def start_container_hooks():
            # runtime-spec: startContainer hooks run "after the start operation
            # is called but before the user-specified program command is executed",
            # in the container namespace.
            run_hooks("startContainer", hooks, state)

        workload.exec_process(launch.spec.process, channel, launch.preserve_fds, terminal_slave,
                              launch.confinement, start_container_hooks if hooks else None)
    except BaseException as e:
        if not sent_built:
            try:
                unix.send(launch.sync, {"error": _describe(e)})
            except OSError:
                pass
        os._exit(1)


def _detach_from_sandbox(launch, channel):
    """Signals at their defaults (the kernel then drops, for a pid
    namespace's init, every signal but SIGKILL and SIGSTOP sent from
    outside: what the sandbox does not decide itself does not reach this
    process before its exec), death with the sandbox, and none of the
    sandbox's sockets but the two it needs."""
    workload.reset_signals()
    prctl.set_pdeathsig(signals.SIGKILL)
    # The sandbox may have died before the line above: its end of the
    # channel is then closed.
    poller = select.poll()
    poller.register(channel.fileno(), select.POLLIN)
    if any(event & (select.POLLHUP | select.POLLERR) for _, event in poller.poll(0)):
        os._exit(1)
    prctl.set_name(NAME)
    launch.gofer.close()
    launch.control.close()


def build(launch):
    """The container's root, mounts, devices, names and terminal; returns
    the terminal's slave fd or None."""
    spec = launch.spec
    msg, fds = launch.trees, launch.tree_fds
    tree, rootfs_dir = fds[0], fds[1]
    os.close(rootfs_dir)
    binds = dict(zip(msg["binds"], fds[2:2 + len(msg["binds"])]))
    devices = dict(zip(msg["devices"], fds[2 + len(msg["binds"]):]))
    linux = spec.linux
    # mknod(2) of a device is refused in a user namespace, the container's
    # or the runtime's own (rootless podman's); read before pivot_root
    # (/proc/self/uid_map)
    user_ns = any(n.type == "user" for n in linux.namespaces) or in_user_namespace()
    own_ns = rootfs.own_mount_namespace(spec)
    holder = None  # without a mount namespace of its own: the tmpfs the root is attached on
    try:
        rootfs.isolate_from_host(tree, binds, spec.mounts, devices.values(), own_ns)
        if own_ns:
            rootfs.attach_root(tree)
        else:
            holder = rootfs.hold_root(tree)
        rootfs.mount_all(tree, spec.mounts, binds, launch.cgroup_layout, not own_ns)
        rootfs.ensure_cwd(tree, spec.process.cwd)
        _creation_hooks(launch)
        rootfs.enter_root(tree, launch.no_pivot, own_ns)
    except BaseException:
        if holder is not None:
            os.close(holder)
        raise
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
        if spec.hostname is not None:
            _set_name(libc.sethostname, spec.hostname)
        if spec.domainname is not None:
            _set_name(libc.setdomainname, spec.domainname)
        # Last of the mounts: an unbindable root could not be bound from.
        if own_ns:
            rootfs.set_root_propagation(linux.rootfs_propagation)
            if spec.root.readonly:
                rootfs.make_root_readonly()
        elif linux.rootfs_propagation or spec.root.readonly:
            rootfs.reroot_detached(linux.rootfs_propagation, spec.root.readonly)
    finally:
        os.close(root_fd)
        if holder is not None:
            os.close(holder)  # the last mount is made (rootfs.hold_root)
        for fd in devices.values():
            os.close(fd)
    workload.check_executable(spec.process)
    if not spec.process.terminal:
        return None
    slave = _make_terminal(launch)
    # The process's stdio is the terminal. The caller's stdio is then only
    # create's own output, which containerd's shim reads to EOF: holding it
    # until start would hang the shim.
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return slave


def _creation_hooks(launch):
    """prestart and createRuntime run in the runtime namespace, so the CLI
    runs them; createContainer runs here, in the container's namespaces,
    with its path resolved in the runtime's mount tree (still visible
    before pivot_root)."""
    hooks = launch.spec.hooks
    if not (hooks.prestart or hooks.create_runtime or hooks.create_container):
        return
    unix.send(launch.sync, {"op": "hooks"})
    reply, _ = unix.recv(launch.sync)
    if not reply or "error" in reply:
        raise InitError((reply or {}).get("error", "create hooks: the runtime went away"))
    run_hooks("createContainer", hooks.create_container, reply["state"])


def _make_terminal(launch):
    """A pty inside the container; the master goes to the console socket,
    the slave is kept for the process."""
    if launch.console is None:
        raise InitError("process.terminal is true but no --console-socket was given")
    slave = tty.hand_to_console(launch.console, launch.spec.process.console_size)
    launch.console = None
    return slave


def _set_name(setter, name):
    data = name.encode()
    check(setter(data, len(data)))


def _describe(e):
    if isinstance(e, OSError):
        text = (e.strerror or str(e)).lower()
        return f"{text}: {e.filename}" if e.filename else text
    return str(e) or type(e).__name__
