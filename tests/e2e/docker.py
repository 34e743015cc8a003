"""A dockerd of the tests' own, and the docker client driving the runtime under test.

dockerd 20.10 starts and supervises a containerd of its own; both keep
everything under one base directory: the data root (images, containers,
the supervised containerd's root), the exec root (sockets, the
containerd state, netns files, and the runtime's --root, which dockerd
puts at EXEC_ROOT/runtime-runc/moby for every runtime), the pid file,
the API socket, the trust key and the daemon.json it reads instead of
/etc/docker/daemon.json. No iptables rules, no bridge, no sysctl: the
containers run with --network none. The client's own config (~/.docker)
is under the base directory too.

What is outside the base directory and created anyway is removed at the
end where the tests created it: containerd 1.6's runc shim puts its
sockets in /run/containerd/s whatever the state dir, and dockerd's
plugin discovery makes /run/docker/plugins.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

from tests.e2e.cleanup import remove_empty_dirs, remove_tree
from tests.e2e.commands import CommandFailed, run, run_in_terminal
from tests.support.runtime import wait_until

DOCKER_TIMEOUT = 60
CLEANUP_TIMEOUT = 30
STOP_TIMEOUT = 30
# the Debian client, of dockerd's own version (a newer client in PATH, as
# /usr/local/bin/docker may be, would negotiate the API down, but test the pair)
DEBIAN_CLIENT = "/usr/bin/docker"
# made outside the base directory (see the module's docstring), innermost first
OUTSIDE_DIRS = ("/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker")
# runtime names dockerd keeps for itself: the runtime under test is
# registered under another name when it is one of them
RESERVED_RUNTIME_NAMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def client_binary() -> str:
    return DEBIAN_CLIENT if os.access(DEBIAN_CLIENT, os.X_OK) else shutil.which("docker")


def registered_name(runtime) -> str:
    """The name the runtime under test is known by in daemon.json."""
    return f"e2e-{runtime.name}" if runtime.name in RESERVED_RUNTIME_NAMES else runtime.name


class DockerDaemon:
    def __init__(self, base: str, runtime):
        self.base = base
        self.runtime = runtime
        self.runtime_name = registered_name(runtime)
        self.data_root = os.path.join(base, "data")
        self.exec_root = os.path.join(base, "exec")
        self.socket = os.path.join(base, "docker.sock")
        self.pidfile = os.path.join(base, "docker.pid")
        self.config_path = os.path.join(base, "daemon.json")
        self.log_path = os.path.join(base, "dockerd.log")
        # the supervised containerd's socket: in the command lines of its shims
        self.containerd_socket = os.path.join(self.exec_root, "containerd", "containerd.sock")
        # where the runtime's state is (the --root dockerd passes it)
        self.runtime_root = os.path.join(self.exec_root, "runtime-runc", "moby")
        self._existing_outside = {d for d in OUTSIDE_DIRS if os.path.exists(d)}
        self.client_env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}",
                               DOCKER_CONFIG=os.path.join(base, "client"))
        self._proc = None

    def config(self) -> dict:
        """daemon.json: the runtime under test by name (the README's Docker
        section), and the daemon's own files kept under the base directory."""
        return {
            "runtimes": {self.runtime_name: {"path": self.runtime.path}},
            # vfs needs no mount and works on any backing filesystem
            "storage-driver": "vfs",
            # the daemon's identity key, by default /etc/docker/key.json
            "deprecated-key-path": os.path.join(self.base, "key.json"),
        }

    def argv(self) -> list:
        return ["dockerd", "--config-file", self.config_path, "--data-root", self.data_root,
                "--exec-root", self.exec_root, "--pidfile", self.pidfile, "-H", f"unix://{self.socket}",
                "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none"]

    def start(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=2)
        # containerd and the shims inherit TMPDIR (dockerd's own temp
        # files are in the data root)
        tmpdir = os.path.join(self.base, "tmp")
        os.makedirs(tmpdir)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(self.argv(), env=dict(os.environ, TMPDIR=tmpdir),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(self._serving, 60, f"dockerd to serve on {self.socket}")

    def _serving(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(self.describe())
        return os.path.exists(self.socket) and self("version", check=False, timeout=10).returncode == 0

    def describe(self) -> str:
        """The daemon's state and last words, to explain a failed command."""
        code = self._proc.poll()
        state = "is running" if code is None else f"exited with {code}"
        with open(self.log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        return f"dockerd (pid {self._proc.pid}) {state}; its log ends with:\n{tail}"

    def client_argv(self, *args) -> list:
        return [client_binary(), *args]

    def __call__(self, *args, check=True, timeout=DOCKER_TIMEOUT):
        try:
            return run(self.client_argv(*args), timeout=timeout, check=check, env=self.client_env)
        except CommandFailed as e:
            raise CommandFailed(f"{e}\n{self.describe()}") from None

    def container_dirs(self) -> list:
        """Where mounts of containers would be: their files, root
        filesystems, volumes, network namespaces and tasks (dockerd's own
        bind mount of the data root is not one of them)."""
        return [os.path.join(self.data_root, d) for d in ("containers", "vfs", "volumes")] + \
            [os.path.join(self.exec_root, d) for d in ("netns", "containerd")]

    def load_image(self, docker_archive: str):
        self("load", "--input", docker_archive)

    def stop(self):
        """SIGTERM (dockerd stops its containerd), a bounded wait, SIGKILL;
        then whatever outlived it: its containerd, shims of a leaked task."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        for pid in os.listdir("/proc"):
            if pid.isdigit() and self.exec_root in _cmdline(pid):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self):
        remove_tree(self.base)
        remove_empty_dirs(*(d for d in OUTSIDE_DIRS if d not in self._existing_outside))


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class DockerContainers:
    """One test's containers: named with the test's token, each one's full
    id recorded (through --cidfile) for the leak check."""

    def __init__(self, daemon: DockerDaemon, token: str):
        self.daemon = daemon
        self.token = token
        self._cidfiles = tempfile.mkdtemp(prefix=f"cidfiles-{token}-", dir=daemon.base)
        self._count = 0

    def __call__(self, *args, **kw):
        return self.daemon(*args, **kw)

    def run_argv(self, *args) -> tuple:
        """(name, argv) of `docker run ARGS` of a new container of this test,
        with the runtime under test by its registered name."""
        self._count += 1
        name = f"{self.token}-{self._count}"
        cidfile = os.path.join(self._cidfiles, name)
        argv = self.daemon.client_argv("run", "--name", name, "--cidfile", cidfile, "--network", "none",
                                       "--runtime", self.daemon.runtime_name, *args)
        return name, argv

    def run(self, *args, check=True, timeout=DOCKER_TIMEOUT):
        _, argv = self.run_argv(*args)
        return run(argv, timeout=timeout, check=check, env=self.daemon.client_env)

    def detach(self, *args) -> str:
        """`docker run -d ARGS`; the new container's name."""
        name, argv = self.run_argv("-d", *args)
        run(argv, timeout=DOCKER_TIMEOUT, env=self.daemon.client_env)
        return name

    def run_in_terminal(self, *args, timeout=DOCKER_TIMEOUT):
        """`docker run ARGS` from a terminal."""
        _, argv = self.run_argv(*args)
        return run_in_terminal(argv, timeout=timeout, env=self.daemon.client_env)

    def inspect(self, name, template) -> str:
        return self("inspect", "--format", template, name).stdout.strip()

    def exists(self, name) -> bool:
        return self("container", "inspect", name, check=False).returncode == 0

    def ids(self) -> list:
        """Full ids of every container this test created."""
        found = []
        for name in sorted(os.listdir(self._cidfiles)):
            with open(os.path.join(self._cidfiles, name)) as f:
                found.append(f.read().strip())
        return found

    def remove_all(self) -> list:
        """Force-remove whatever of this test is left; what went wrong."""
        problems = []
        for cid in self.ids():
            try:
                result = self("rm", "--force", cid, check=False, timeout=CLEANUP_TIMEOUT)
            except CommandFailed as e:  # it hung
                problems.append(str(e).splitlines()[0])
                continue
            # containers run with --rm, or removed by the test, are gone already
            if result.returncode != 0 and "No such container" not in result.stderr:
                problems.append(f"docker rm --force {cid} failed: {result.stderr.strip()}")
        listed = self("ps", "--all", "--quiet", "--no-trunc", "--filter", f"name={self.token}",
                      check=False, timeout=CLEANUP_TIMEOUT).stdout.split()
        if listed:
            problems.append(f"containers still in dockerd: {' '.join(listed)}")
        return problems
