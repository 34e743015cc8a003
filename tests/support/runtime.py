"""Driving the runtime CLI from tests, the way an engine does.

The test process is a child subreaper (like conmon or containerd's shim), so
sandboxes and gofers, orphaned when `create` exits, are reparented to it.
Exited orphans are reaped after every call; children still tracked by a
background Popen are left to it, so their exit status stays correct.
"""

import os
import signal
import subprocess
import sys
import time

RUNTIME = [sys.executable, "-m", "runsc_py"]
_background = set()


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
    for pid in _children() - _background:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


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
            try:
                proc = subprocess.run(self.argv(*args), timeout=timeout, input=input,
                                      stdout=out, stderr=err, **kw)
            finally:
                reap_orphans()
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                                 out.read().decode(errors="replace"),
                                                 err.read().decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"runsc-py {' '.join(map(str, args))} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def popen(self, *args, **kw):
        proc = subprocess.Popen(self.argv(*args), **kw)
        _background.add(proc.pid)
        return proc

    def finish(self, proc, timeout=30):
        try:
            return proc.wait(timeout=timeout)
        finally:
            _background.discard(proc.pid)
            reap_orphans()

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


def kill_token_processes(token):
    """Last resort in teardown: SIGKILL whatever still carries the token."""
    from .leaks import leaked_processes
    for line in leaked_processes(token):
        pid = int(line.split()[1].rstrip(":"))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
