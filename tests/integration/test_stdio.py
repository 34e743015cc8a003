"""What reaches the container's process: the caller's stdio, a terminal
over --console-socket (runc's protocol), --preserve-fds and nothing else."""

import fcntl
import os
import select
import socket
import subprocess
import tempfile

from tests.support.busybox import read_config, write_config
from tests.support.runtime import reap_orphans, wait_for_exit


class ConsoleReceiver:
    """The engine's end of --console-socket: a listening unix stream socket
    that receives the pty master as SCM_RIGHTS."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(20)

    def receive(self):
        conn, _ = self.sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1
        return fds[0]

    def close(self):
        self.sock.close()


def read_until_eof(fd, limit=1 << 16):
    out = bytearray()
    while len(out) < limit:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the last slave closed
            break
        if not data:
            break
        out += data
    return bytes(out)


def _read_to_eof(fd, timeout):
    """Everything until EOF; fails if EOF does not come within `timeout`."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks = []
    while True:
        assert poller.poll(timeout * 1000), "the pipe is still held open"
        data = os.read(fd, 4096)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_terminal_goes_over_the_console_socket(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "tty; stty size; read line; echo got:$line"])
    config = read_config(bundle)
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 101}
    write_config(bundle, config)
    receiver = ConsoleReceiver(env.tmp)
    try:
        rt("create", "--bundle", bundle, "--console-socket", receiver.path, cid)
        master = receiver.receive()
    finally:
        receiver.close()
    try:
        os.set_inheritable(master, False)
        pid = rt.state(cid)["pid"]
        rt("start", cid)
        os.write(master, b"hello\n")
        assert wait_for_exit(pid, 20)
        output = read_until_eof(master).decode(errors="replace").replace("\r", "")
    finally:
        os.close(master)
    lines = [line for line in output.splitlines() if line]
    assert lines[0].startswith("/dev/pts/")
    assert "33 101" in lines
    assert "got:hello" in lines
    rt("delete", cid)


def test_terminal_without_console_socket_is_refused(env):
    bundle = env.bundle(["true"])
    config = read_config(bundle)
    config["process"]["terminal"] = True
    write_config(bundle, config)
    result = env.rt("create", "--bundle", bundle, env.cid(), check=False)
    assert result.returncode == 1 and "--console-socket" in result.stderr
    assert not os.listdir(env.root)


def test_stdio_reaches_the_workload_unchanged(env):
    """Engines pass files and pipes as the container's stdio to create."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "read a; echo out:$a; echo err:$a >&2"])
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, \
            tempfile.TemporaryFile() as stderr:
        stdin.write(b"piped\n")
        stdin.seek(0)
        done = subprocess.run(rt.argv("create", "--bundle", bundle, cid), stdin=stdin, stdout=stdout,
                              stderr=stderr, timeout=30)
        reap_orphans()
        assert done.returncode == 0
        rt("start", cid)
        rt("wait", cid, timeout=20)
        stdout.seek(0)
        stderr.seek(0)
        assert stdout.read() == b"out:piped\n"
        assert stderr.read() == b"err:piped\n"
    rt("delete", cid)


def test_preserve_fds_are_passed_with_listen_fds(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "echo $LISTEN_FDS; cat <&3; echo to-four >&4; "
                                     "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    with tempfile.TemporaryFile() as three, tempfile.TemporaryFile() as four, \
            tempfile.TemporaryFile() as five:
        three.write(b"from-three\n")
        three.seek(0)
        # The fifth is not preserved: it must not reach the container.
        sources = [three.fileno(), four.fileno(), five.fileno()]

        def place_fds():
            # In the child: move the sources out of 3..5 first, then into place.
            moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
            for target, fd in zip((3, 4, 5), moved):
                os.dup2(fd, target)
                os.close(fd)

        with tempfile.TemporaryFile() as out:
            # pass_fds: subprocess closes every other fd after preexec_fn.
            done = subprocess.run(rt.argv("run", "--preserve-fds", "2", "--bundle", bundle, cid),
                                  stdout=out, stderr=subprocess.DEVNULL, timeout=30,
                                  preexec_fn=place_fds, pass_fds=[3, 4, 5] + sources)
            reap_orphans()
            out.seek(0)
            lines = out.read().decode().splitlines()
        assert done.returncode == 0
        assert lines[0] == "2" and lines[1] == "from-three"
        fds = [int(fd) for fd in lines[2].split()]
        assert fds == [0, 1, 2, 3, 4, 5]  # 5 is the one ls opened, not the caller's fifth
        four.seek(0)
        assert four.read() == b"to-four\n"


def test_preserve_fds_must_be_open(env):
    """Otherwise the runtime's own fds would be numbered into the range."""
    result = env.rt("run", "--preserve-fds", "3", "--bundle", env.bundle(["true"]), env.cid(), check=False)
    assert result.returncode == 1 and "--preserve-fds 3: fd 3 is not open" in result.stderr
    assert not os.path.exists(env.root) or not os.listdir(env.root)


def test_no_fd_of_the_caller_leaks_without_preserve_fds(env):
    """containerd leaks its socket as fd 3 into create: it must not reach the container."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    left, right = socket.socketpair()
    try:
        def leak_fd3():
            os.dup2(left.fileno(), 3)

        with tempfile.TemporaryFile() as out:
            done = subprocess.run(rt.argv("run", "--bundle", bundle, cid), stdout=out,
                                  stderr=subprocess.DEVNULL, timeout=30, preexec_fn=leak_fd3,
                                  pass_fds=(left.fileno(),))
            reap_orphans()
            out.seek(0)
            fds = [int(fd) for fd in out.read().split()]
        assert done.returncode == 0
        assert set(fds) <= {0, 1, 2, 3} and len(fds) == 4  # 3 is the one ls opened for /proc/self/fd
        assert _fd_targets_of_ls(env) == []
    finally:
        left.close()
        right.close()


def _fd_targets_of_ls(env):
    """Sockets visible in an exec'd process's fds: there must be none."""
    cid = env.cid("probe")
    env.rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    env.rt("start", cid)
    out = env.rt("exec", cid, "sh", "-c", "ls -l /proc/self/fd/ | grep -c socket: || true").stdout
    env.rt("delete", "--force", cid)
    return [] if out.strip() == "0" else [out.strip()]


def test_helpers_do_not_hold_the_callers_stdout(env):
    """The shim reads the container's stdout to EOF: once the workload
    exits, no runtime process may still hold it open."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["echo", "bye"])
    read_end, write_end = os.pipe()
    try:
        done = subprocess.run(rt.argv("create", "--bundle", bundle, cid), stdout=write_end,
                              stderr=subprocess.DEVNULL, timeout=30)
        reap_orphans()
        assert done.returncode == 0
        os.close(write_end)
        write_end = None
        rt("start", cid)
        rt("wait", cid, timeout=20)
        # The sandbox exited with the workload; the gofer never had stdout.
        assert _read_to_eof(read_end, 20) == b"bye\n"
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
    rt("delete", cid)
