"""Errors a user can cause, and the runtime's log.

Every failure a user can cause is a `Failure`: the CLI prints it as one line
on stderr, writes it to the `--log` file and exits 1. Anything else is a bug:
its traceback goes to the log and stderr still gets one line.

The log format mirrors runc's because engines parse it: containerd's shim
reads the last `{"level":"error","msg":...}` line of `--log` as the error
message, podman reads the file as JSON when `runtime_supports_json` names the
runtime. The `logging` module is not used: it costs several milliseconds of
import on a path that runs for every CLI call.
"""

import os
import sys
import time

from . import jsonio


class Failure(Exception):
    """An error the user can cause: reported as one line, exit status 1."""


class NotExist(Failure):
    def __init__(self, cid):
        super().__init__(f'container "{cid}" does not exist')


class AlreadyExists(Failure):
    def __init__(self, cid):
        super().__init__(f'container "{cid}" already exists')


class NotRunning(Failure):
    def __init__(self, cid):
        super().__init__(f'container "{cid}" is not running: container not running')


class Unsupported(Failure):
    def __init__(self, what):
        super().__init__(f"{what} is not supported")


class Corrupt(Failure):
    def __init__(self, cid, why):
        super().__init__(f'state of container "{cid}" is corrupt: {why}')


def os_error_text(err: OSError) -> str:
    """`path: strerror` in lower case, the wording engines match
    (podman maps "no such file or directory" to 127, "permission denied" to 126);
    for a unix socket (linux/unix.py), `cannot ACTION PATH: Strerror`, with
    what to do where the filesystem cannot hold sockets."""
    action = getattr(err, "socket_action", None)
    if action is not None:
        return f"cannot {action} {err.filename}: {err.strerror or err}{_socket_hint(err, action)}"
    text = (err.strerror or str(err)).lower()
    if err.filename is not None:
        return f"{err.filename}: {text}"
    return text


def _socket_hint(err, action):
    """Every socket the runtime listens on is in its root directory. 9p,
    and some FUSE filesystems, refuse to bind a unix socket (ENXIO,
    EOPNOTSUPP)."""
    import errno
    if action == "listen on" and err.errno in (errno.ENXIO, errno.EOPNOTSUPP):
        return " (the root directory's filesystem cannot hold unix sockets; use a local --root)"
    return ""


def _rfc3339_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


class Log:
    """The `--log` file. Lines are appended with one write each (O_APPEND),
    so concurrent runtime calls sharing a log file never interleave a line."""

    def __init__(self, path=None, fmt="text", debug=False):
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def write(self, level: str, msg: str):
        if not self.path:
            return
        if self.fmt == "json":
            line = jsonio.dumps({"level": level, "msg": msg, "time": _rfc3339_now()})
        else:
            line = f'time="{_rfc3339_now()}" level={level} msg={jsonio.dumps(msg)}'
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def debug(self, msg: str):
        if self.debug_enabled:
            self.write("debug", msg)

    def warning(self, msg: str):
        self.write("warning", msg)

    def error(self, msg: str):
        self.write("error", msg)


log = Log()


def configure_log(path, fmt, debug):
    log.path = path
    log.fmt = fmt
    log.debug_enabled = debug


# C0 control characters and DEL, escaped: a key or path from the user's
# input must neither split the one line nor drive the terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f)} | {0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t"}


def one_line(msg: str) -> str:
    return msg.translate(_CONTROL)


def report(msg: str):
    """The one line a failed command leaves: stderr and the log."""
    msg = one_line(msg)
    log.error(msg)
    try:
        sys.stderr.write(f"runsc-py: {msg}\n")
        sys.stderr.flush()
    except OSError:
        pass
