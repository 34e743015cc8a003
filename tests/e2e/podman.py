"""podman, isolated from the host's podman, driving the runtime under test.

Everything podman keeps is under one base directory: image and container
storage (--root), run state (--runroot), libpod's tmp dir (exit files,
events, locks), network configurations, and the only containers.conf and
storage.conf it reads. The system's /var/lib/containers is never touched.
"""

import os
import tempfile

from tests.e2e.commands import CommandFailed, run, run_in_terminal
from tests.e2e.images import IMAGE, PATH_ENV

PODMAN_TIMEOUT = 60
CLEANUP_TIMEOUT = 30


class PodmanEngine:
    def __init__(self, base: str, runtime):
        self.base = base
        self.runtime = runtime
        self.storage = os.path.join(base, "storage")
        self.runroot = os.path.join(base, "runroot")
        self.tmpdir = os.path.join(base, "libpod-tmp")
        self.network_dir = os.path.join(base, "networks")
        for d in (self.storage, self.runroot, self.tmpdir, self.network_dir):
            os.makedirs(d)
        self.env = dict(os.environ,
                        CONTAINERS_CONF=self._write("containers.conf", self._containers_conf()),
                        CONTAINERS_STORAGE_CONF=self._write("storage.conf", self._storage_conf()),
                        # podman stages images here (default /var/tmp)
                        TMPDIR=self.tmpdir)

    def _containers_conf(self) -> str:
        name = self.runtime.name
        return f"""\
[containers]
# podman raises root containers' nofile and nproc limits to 1048576, which
# setrlimit refuses without CAP_SYS_RESOURCE (missing on test machines)
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
# a lock file under --tmpdir, not the host-wide /dev/shm/libpod_lock
lock_type = "file"
# conmon's environment, also the runtime's: podman's default PATH, and a
# TMPDIR for conmon's console sockets (default /tmp, where conmon leaves
# them when a runtime fails)
conmon_env_vars = ["{PATH_ENV}", "TMPDIR={self.tmpdir}"]
# podman passes --log-format=json to the runtimes named here
runtime_supports_json = ["{name}"]

[engine.runtimes]
# so that `--runtime {name}` finds it by name, as users register runtimes
{name} = ["{self.runtime.path}"]
"""

    def _storage_conf(self) -> str:
        # vfs needs no mount and works on any backing filesystem (CI may
        # itself run on overlayfs); the host's storage.conf must not apply
        return f"""\
[storage]
driver = "vfs"
graphroot = "{self.storage}"
runroot = "{self.runroot}"
"""

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def argv(self, *args, runtime=None) -> list:
        """podman's command line; `runtime` overrides the runtime's path
        (e.g. with its registered name)."""
        return ["podman", "--root", self.storage, "--runroot", self.runroot,
                "--tmpdir", self.tmpdir, "--network-config-dir", self.network_dir,
                "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--runtime", runtime or self.runtime.path, *args]

    def __call__(self, *args, check=True, timeout=PODMAN_TIMEOUT, runtime=None):
        return run(self.argv(*args, runtime=runtime), timeout=timeout, check=check, env=self.env)

    def import_image(self, rootfs_tar: str):
        """`podman import` the rootfs as IMAGE. Copying an image, podman 4.3
        keeps a blob-info cache in /var/lib/containers/cache whatever --root
        says: it runs in a mount namespace of its own where /var/lib is a
        throwaway tmpfs, so the host's stays untouched."""
        argv = self.argv("import", "--change", "CMD=sh", rootfs_tar, IMAGE)
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs e2e-cache /var/lib && exec "$@"', "sh", *argv],
            timeout=PODMAN_TIMEOUT, env=self.env)

    def remove_images(self):
        self("rmi", "--all", "--force")


class PodmanContainers:
    """One test's containers: named with the test's token, each one's full
    id recorded (through --cidfile) for the leak check."""

    def __init__(self, engine: PodmanEngine, token: str):
        self.engine = engine
        self.token = token
        self._cidfiles = tempfile.mkdtemp(prefix="cidfiles-", dir=engine.base)
        self._count = 0

    def __call__(self, *args, **kw):
        return self.engine(*args, **kw)

    def run_argv(self, *args, runtime=None) -> tuple:
        """(name, argv) of `podman run ARGS` for a new container of this test."""
        self._count += 1
        name = f"{self.token}-{self._count}"
        cidfile = os.path.join(self._cidfiles, name)
        # no network plugins are installed: every container gets --network none
        argv = self.engine.argv("run", "--name", name, "--cidfile", cidfile, "--network", "none",
                                *args, runtime=runtime)
        return name, argv

    def run(self, *args, check=True, timeout=PODMAN_TIMEOUT, runtime=None):
        _, argv = self.run_argv(*args, runtime=runtime)
        return run(argv, timeout=timeout, check=check, env=self.engine.env)

    def detach(self, *args) -> str:
        """`podman run -d ARGS`; the new container's name."""
        name, argv = self.run_argv("-d", *args)
        run(argv, timeout=PODMAN_TIMEOUT, env=self.engine.env)
        return name

    def run_in_terminal(self, *args, timeout=PODMAN_TIMEOUT):
        """`podman run ARGS` from a terminal."""
        _, argv = self.run_argv(*args)
        return run_in_terminal(argv, timeout=timeout, env=self.engine.env)

    def ids(self) -> list:
        """Full ids of every container this test created."""
        found = []
        for name in sorted(os.listdir(self._cidfiles)):
            with open(os.path.join(self._cidfiles, name)) as f:
                found.append(f.read().strip())
        return found

    def remove_all(self) -> list:
        """Force-remove whatever of this test is left; what went wrong."""
        ids = self.ids()
        if not ids:
            return []
        try:
            # --ignore: containers run with --rm are gone already
            result = self.engine("rm", "--force", "--ignore", "--time", "0", *ids,
                                 check=False, timeout=CLEANUP_TIMEOUT)
        except CommandFailed as e:  # it hung
            return [str(e).splitlines()[0]]
        return [] if result.returncode == 0 else [f"podman rm failed: {result.stderr.strip()}"]
