"""A containerd daemon of the tests' own, and ctr driving the runtime under test.

The daemon's root, state and sockets live in one base directory. What
containerd 1.6's runc shim puts in /run/containerd whatever the state dir
(its sockets in s/, ctr's fifos in fifo/, the runtime's --root
runc/<namespace>) is removed at the end, where the tests created it.
"""

import os
import re
import signal
import subprocess

from tests.e2e.cleanup import remove_empty_dirs, remove_tree
from tests.e2e.commands import CommandFailed, run, run_in_terminal
from tests.e2e.images import IMAGE
from tests.support.runtime import wait_until

NAMESPACE = "e2e"
SHIM_RUN_DIR = "/run/containerd"
# the --root the runc shim passes to the runtime (it appends the namespace)
RUNTIME_ROOT = os.path.join(SHIM_RUN_DIR, "runc", NAMESPACE)
CTR_TIMEOUT = 60
CLEANUP_TIMEOUT = 30
# snapshotter "native" (plain copies, a bind mount as rootfs) works on any
# backing filesystem, overlayfs included
SNAPSHOTTER = "native"

_DISABLED_PLUGINS = {
    # the CRI plugin is for Kubernetes (and logs a lot); opt writes /opt/containerd
    2: ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"],
    3: ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
        "io.containerd.internal.v1.opt"],
}


def config_version() -> int:
    """The config format of the installed containerd: 2 for 1.x, 3 for 2.x."""
    out = run(["containerd", "--version"], timeout=10).stdout
    match = re.search(r"\sv?(\d+)\.(\d+)\.", out)
    if not match:
        raise RuntimeError(f"cannot read containerd's version from {out!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major == 1 and minor >= 5:
        return 2
    if major == 2:
        return 3
    raise RuntimeError(f"containerd {major}.{minor} is not supported by these tests (1.5 to 2.x are)")


class ContainerdDaemon:
    def __init__(self, base: str):
        self.base = base
        self.socket = os.path.join(base, "containerd.sock")
        self.log_path = os.path.join(base, "containerd.log")
        self.config_path = os.path.join(base, "config.toml")
        self._run_dir_existed = os.path.exists(SHIM_RUN_DIR)
        self._proc = None

    def config(self, version: int) -> str:
        disabled = ", ".join(f'"{p}"' for p in _DISABLED_PLUGINS[version])
        return f"""\
version = {version}
root = "{self.base}/root"
state = "{self.base}/state"
disabled_plugins = [{disabled}]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"
"""

    def start(self, version: int):
        with open(self.config_path, "w") as f:
            f.write(self.config(version))
        # the shims inherit TMPDIR: their console sockets and exec process
        # specs go there (default /tmp)
        tmpdir = os.path.join(self.base, "tmp")
        os.makedirs(tmpdir)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(["containerd", "--config", self.config_path],
                                          env=dict(os.environ, TMPDIR=tmpdir),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(self._serving, 30, f"containerd to serve on {self.socket}")

    def _serving(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(self.describe())
        return os.path.exists(self.socket) and self.ctr("version", check=False, timeout=10).returncode == 0

    def log_tail(self, lines=20) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def describe(self) -> str:
        """The daemon's state and last words, to explain a failed ctr call."""
        code = self._proc.poll()
        state = "is running" if code is None else f"exited with {code}"
        return f"containerd (pid {self._proc.pid}) {state}; its log ends with:\n{self.log_tail()}"

    def ctr_argv(self, *args) -> list:
        return ["ctr", "--address", self.socket, "--namespace", NAMESPACE, *args]

    def ctr(self, *args, check=True, timeout=CTR_TIMEOUT):
        try:
            return run(self.ctr_argv(*args), timeout=timeout, check=check)
        except CommandFailed as e:
            raise CommandFailed(f"{e}\n{self.describe()}") from None

    def import_image(self, oci_archive: str):
        self.ctr("image", "import", "--snapshotter", SNAPSHOTTER, oci_archive)

    def remove_images(self):
        self.ctr("image", "rm", IMAGE)

    def stop(self):
        """SIGTERM, a bounded wait, then SIGKILL; then shims that outlived it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._kill_shims()

    def _kill_shims(self):
        """A shim exits with its last task; one still serving our socket
        after the daemon is gone was leaked by a test (and reported there)."""
        for pid in os.listdir("/proc"):
            if pid.isdigit() and self.socket in _cmdline(pid):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self):
        remove_tree(self.base)
        if self._run_dir_existed:
            # another containerd uses the directory: only our namespace's is ours
            remove_empty_dirs(RUNTIME_ROOT)
        else:
            remove_empty_dirs(RUNTIME_ROOT, *(os.path.join(SHIM_RUN_DIR, d) for d in ("runc", "s", "fifo")),
                              SHIM_RUN_DIR)


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CtrContainers:
    """One test's containers, their ids carrying the test's token."""

    def __init__(self, daemon: ContainerdDaemon, runtime, token: str):
        self.daemon = daemon
        self.runtime = runtime
        self.token = token
        self.ids = []

    def ctr(self, *args, **kw):
        return self.daemon.ctr(*args, **kw)

    def new_id(self) -> str:
        cid = f"{self.token}-{len(self.ids) + 1}"
        self.ids.append(cid)
        return cid

    def run_argv(self, cid: str, *command, options=()) -> list:
        """`ctr run OPTIONS IMAGE CID COMMAND...` with the runtime under test."""
        return self.daemon.ctr_argv("run", "--snapshotter", SNAPSHOTTER, "--runc-binary", self.runtime.path,
                                    *options, IMAGE, cid, *command)

    def run(self, cid: str, *command, options=(), check=True, timeout=CTR_TIMEOUT):
        return run(self.run_argv(cid, *command, options=options), timeout=timeout, check=check)

    def run_in_terminal(self, cid: str, *command, options=(), timeout=CTR_TIMEOUT):
        """`ctr run` from a terminal: ctr insists on one for --tty."""
        return run_in_terminal(self.run_argv(cid, *command, options=options), timeout=timeout)

    def task_status(self, cid: str) -> str:
        """RUNNING, PAUSED, STOPPED..., or "" without a task."""
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def wait_for_status(self, cid: str, status: str, timeout=30):
        wait_until(lambda: self.task_status(cid) == status, timeout, f"task {cid} to be {status}")

    def remove_all(self) -> list:
        """Delete every task and container of this test; what went wrong."""
        problems = []
        for cid in self.ids:
            # most of them were deleted by the test already: errors are expected
            self._attempt(problems, "task", "delete", "--force", cid)
            self._attempt(problems, "container", "rm", cid)
        listed = self._attempt(problems, "container", "ls", "--quiet")
        left = [cid for cid in self.ids if listed and cid in listed.stdout.split()]
        if left:
            problems.append(f"containers still in containerd: {' '.join(left)}")
        return problems

    def _attempt(self, problems, *args):
        """ctr ARGS in a teardown: a hang is noted in `problems`, not raised."""
        try:
            return self.ctr(*args, check=False, timeout=CLEANUP_TIMEOUT)
        except CommandFailed as e:
            problems.append(str(e).splitlines()[0])
            return None
