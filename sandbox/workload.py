"""Launching the workload: fork, set up the process per its spec, execve.

Shared by the sandbox (the container's process, at `start`) and by `exec`
(a process joining the container from the host side)."""

import errno
import fcntl
import os
import termios
import warnings  # noqa: F401  os.execvpe imports it (os.get_exec_path), after pivot_root

from runsc_py.linux import signals
from runsc_py.linux import unix
from runsc_py.linux.fs import close_all_except

CATCHABLE = [s for s in signals.valid_signals() if s not in (signals.SIGKILL, signals.SIGSTOP)]


def exec_error(arg0, err: OSError) -> str:
    """The wording engines map to exit codes (podman: 127 for "not found",
    126 for "permission denied")."""
    if err.errno == errno.ENOENT:
        if "/" in arg0:
            return f'exec: "{arg0}": no such file or directory'
        return f'exec: "{arg0}": executable file not found in $PATH'
    if err.errno in (errno.EACCES, errno.EPERM):
        return f'exec: "{arg0}": permission denied'
    return f'exec: "{arg0}": {(err.strerror or str(err)).lower()}'


def check_executable(process):
    """Fail early, at create, when process.args[0] cannot be executed in the
    container (as runc does): the error text is what engines map to 127/126."""
    arg0 = process.args[0]
    env = env_dict(process.env)
    if "/" in arg0:
        candidates = [arg0 if arg0.startswith("/") else os.path.join(process.cwd, arg0)]
    else:
        path = env.get("PATH", os.defpath)
        candidates = [os.path.join(d or ".", arg0) for d in path.split(":")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return
            raise ExecFailure(exec_error(arg0, OSError(errno.EACCES, "permission denied")), 126)
    raise ExecFailure(exec_error(arg0, OSError(errno.ENOENT, "not found")), 127)


def env_dict(env):
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def reset_signals():
    signals.set_wakeup_fd(-1)
    for sig in CATCHABLE:
        try:
            signals.signal(sig, signals.SIG_DFL)
        except (OSError, ValueError):
            pass
    signals.pthread_sigmask(signals.SIG_SETMASK, [])


def set_controlling_terminal(slave_fd):
    os.setsid()
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave_fd, fd)
    if slave_fd > 2:
        os.close(slave_fd)


def close_extra_fds(preserve_fds, keep):
    """No fd of the runtime reaches the container (CVE-2024-21626): only
    stdio and the --preserve-fds range stay; `keep` (close-on-exec) too."""
    close_all_except(set(range(3 + preserve_fds)) | set(keep))


def spawn(process, confinement, *, preserve_fds=0, terminal_slave=None, before_exec=None):
    """Fork the process and return (pid, error text or None, seccomp
    listener fd or None) once it has exec'd or failed to, or as soon as it
    sends the seccomp listener fd. The child never returns."""
    ours, theirs = unix.pair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        exec_process(process, theirs, preserve_fds, terminal_slave, confinement, before_exec)
    theirs.close()
    with ours:
        error, listener = await_exec(ours)
    return pid, error, listener


def await_exec(ours):
    """(error text or None, seccomp listener fd or None) from a process
    on its way to execve (`exec_process` on the other end of `ours`).

    The two talk over a close-on-exec socket pair: the child sends the
    listener fd (SCMP_ACT_NOTIFY) or an error; EOF means the exec happened.
    The listener comes once the filter is loaded, the last step before
    execve: a notified system call on the way (execve itself) waits for the
    agent, which must get the fd first; an exec failure after it is the
    process's exit status."""
    error, listener = None, None
    while True:
        msg, fds = unix.recv(ours)
        if msg is None:
            break
        if "error" in msg:
            error = msg["error"]
        if msg.get("seccompListener") and fds:
            listener = fds[0]
            break
    return error, listener


def exec_process(process, channel, preserve_fds, terminal_slave, confinement, before_exec):
    """Set up this process per `process` and execve it (never returns);
    errors go over `channel` (see await_exec)."""
    arg0 = process.args[0]
    try:
        reset_signals()
        if terminal_slave is not None:
            set_controlling_terminal(terminal_slave)
        else:
            os.setsid()
        close_extra_fds(preserve_fds, {channel.fileno()})
        env = env_dict(process.env)
        if preserve_fds:
            env["LISTEN_FDS"] = str(preserve_fds)
            env["LISTEN_PID"] = str(os.getpid())
        cwd_entered = _enter_cwd(process.cwd)
        listener = confinement.apply(cwd_entered)
        if listener is not None:
            _send(channel, {"seccompListener": True}, [listener])
            os.close(listener)
        if before_exec is not None:
            # What runc does (checked with runc 1.1): startContainer hooks
            # run under the process's own confinement (user, capabilities,
            # no_new_privs, seccomp), in the container, just before execve.
            before_exec()
        try:
            os.execvpe(arg0, list(process.args), env)
        except OSError as e:
            raise ExecFailure(exec_error(arg0, e), 127 if e.errno == errno.ENOENT else 126)
    except ExecFailure as e:
        _send(channel, {"error": e.message})
        os._exit(e.code)
    except OSError as e:
        _send(channel, {"error": (e.strerror or str(e)).lower() + (f": {e.filename}" if e.filename else "")})
        os._exit(1)
    except BaseException as e:
        _send(channel, {"error": str(e) or type(e).__name__})
        os._exit(1)


def _enter_cwd(cwd):
    """chdir as root; False if refused (retried after the user switch)."""
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        return False
    except OSError as e:
        raise ExecFailure(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                          f"{(e.strerror or str(e)).lower()}", 1) from None


class ExecFailure(Exception):
    """An exec that cannot happen: the message engines read, and the exit code."""
    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code


def _send(channel, msg, fds=()):
    try:
        unix.send(channel, msg, fds)
    except OSError:
        pass
