"""The CLI's own console: for `run` and `exec -t` without --console-socket.

runc's behaviour: when the process wants a terminal and no console socket
is given, the runtime receives the pty master itself and copies between it
and its own stdio (raw mode while stdin is a terminal)."""

import os
import select
import tempfile

from .linux import signals, unix


class ConsoleProxy:
    """Its socket exists only once `path` is asked for: `run` makes a proxy
    before it knows whether the process wants a terminal, and an fd opened
    for nothing could even take a --preserve-fds slot."""

    def __init__(self):
        self.dir = None
        self.listener = None
        self.master = None
        self.saved_tty = None

    @property
    def path(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="runsc-py-console-")
            self.listener = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM)
            self.listener.bind(os.path.join(self.dir, "console.sock"))
            self.listener.listen(1)
        return os.path.join(self.dir, "console.sock")

    @property
    def used(self):
        return self.dir is not None

    def receive(self, timeout=30):
        """The master fd the sandbox (or exec) sent."""
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        with conn:
            _msg, fds = unix.recv_bytes(conn, 4096)
        self.close_listener()
        if not fds:
            raise OSError("no terminal received on the console socket")
        self.master = fds[0]
        self._sync_size()
        return self.master

    def close_listener(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            os.unlink(self.path)
            os.rmdir(self.dir)
            self.dir = None

    def _sync_size(self):
        import fcntl
        import termios
        if os.isatty(0):
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def copy_until(self, done_fd):
        """Copy stdin -> master and master -> stdout until the master hangs up
        (the process exited) or `done_fd` becomes readable."""
        import tty
        if os.isatty(0):
            import termios
            self.saved_tty = termios.tcgetattr(0)
            tty.setraw(0)
        signals.signal(signals.SIGWINCH, lambda *_: self._sync_size())
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        poller.register(done_fd, select.POLLIN)
        stdin_open = True
        poller.register(0, select.POLLIN)
        try:
            while True:
                for fd, events in poller.poll():
                    if fd == self.master:
                        try:
                            data = os.read(self.master, 65536)
                        except OSError:
                            data = b""
                        if not data:
                            return
                        _write_all(1, data)
                    elif fd == 0 and stdin_open:
                        data = os.read(0, 65536)
                        if not data:
                            stdin_open = False
                            poller.unregister(0)
                        else:
                            _write_all(self.master, data)
                    elif fd == done_fd:
                        self._drain()
                        return
        finally:
            self.restore()

    def _drain(self):
        os.set_blocking(self.master, False)
        try:
            while True:
                data = os.read(self.master, 65536)
                if not data:
                    return
                _write_all(1, data)
        except OSError:
            return

    def restore(self):
        if self.saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None

    def close(self):
        self.close_listener()
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
