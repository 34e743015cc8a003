"""Driving the runtime CLI from tests, the way an engine does.

The test process is a child subreaper (like conmon or containerd's shim), so
sandboxes and gofers, orphaned when `create` exits, are reparented to it.
Exited orphans are reaped after every call; the runtime processes the
driver itself started are left to their Popen, so their exit status stays
correct even when tests drive the runtime from many threads (a Popen whose
child another thread reaped would report exit status 0).
"""

import os
import subprocess
import sys
import threading
import time

RUNTIME = [sys.executable, "-m", "runsc_py"]
_background = set()
_lock = threading.Lock()  # orders spawning against reaping


def become_subreaper():
    import prctl
    prctl.set_child_subreaper(True)


def _children():
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def reap_orphans():
    """Collect exited orphans (never a process a Popen still waits for)."""
    with _lock:
        for pid in _children() - _background:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def spawn(argv, **kw):
    """Popen whose child no reap_orphans call takes away from it."""
    with _lock:
        proc = subprocess.Popen(argv, **kw)
        _background.add(proc.pid)
    return proc


def collect(proc, timeout, input=None):
    """Wait for a spawned process (SIGKILL on timeout); its exit status."""
    try:
        try:
            proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    finally:
        with _lock:
            _background.discard(proc.pid)
        reap_orphans()
    return proc.returncode


class Runtime:
    """`runsc-py --root ROOT ...` for one test."""

    def __init__(self, root, log=None):
        self.root = root
        self.log = log

    def argv(self, *args):
        base = RUNTIME + ["--root", self.root]
        if self.log:
            base += ["--log", self.log, "--log-format", "json"]
        return base + [str(a) for a in args]

    def __call__(self, *args, check=True, timeout=30, input=None, **kw):
        """Run the CLI; stdout and stderr go to files, as with engines: the
        container's processes inherit them, so a pipe would stay open as long
        as the container lives."""
        import tempfile
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            argv = self.argv(*args)
            proc = spawn(argv, stdin=subprocess.PIPE if input is not None else None,
                         stdout=out, stderr=err, **kw)
            code = collect(proc, timeout, input.encode() if isinstance(input, str) else input)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(argv, code, out.read().decode(errors="replace"),
                                                 err.read().decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"runsc-py {' '.join(map(str, args))} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def popen(self, *args, **kw):
        return spawn(self.argv(*args), **kw)

    def finish(self, proc, timeout=30):
        return collect(proc, timeout)

    def state(self, cid):
        import json
        return json.loads(self("state", cid).stdout)

    def status(self, cid):
        return self.state(cid)["status"]

    def cleanup(self):
        """delete --force every container of this root, bounded."""
        if not os.path.isdir(self.root):
            return
        ids = set()
        for name in os.listdir(self.root):
            if "_sandbox:" in name and not name.startswith("."):
                ids.add(name.split("_sandbox:")[0])
        for cid in ids:
            self("delete", "--force", cid, check=False, timeout=30)


def wait_for_exit(pid, timeout):
    """Wait (pidfd, no polling) until `pid` exits; True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        import select
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(fd)


def wait_until(predicate, timeout, what):
    """For conditions the kernel cannot notify (a file a container writes):
    bounded, with backoff."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def assert_one_line_error(result, contains=""):
    """A failed call as engines expect it: exit 1 and one line on stderr
    starting with `runsc-py: `, neither a traceback nor an internal error."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("runsc-py: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert contains in result.stderr, result.stderr
