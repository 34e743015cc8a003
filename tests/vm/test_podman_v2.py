"""podman on a pure cgroup v2 host without systemd, with its default
cgroup configuration: no --cgroup-manager is given, and podman itself must
pick cgroupfs (systemd is not PID 1) and cgroup v2. run, --memory,
--pids-limit, --cpus, exec, stop and rm, each checked from the host's
cgroup files, from inside the container and through podman.

The engine set-up, images, per-test names and the leak check are the
end-to-end tests' (tests/e2e), reused as they are; only the cgroup
manager flag those tests pass is left out here."""

import os

import pytest

from tests.e2e import conftest as e2e
from tests.e2e import podman as podman_module
from tests.e2e.images import IMAGE
from tests.e2e.podman import PodmanContainers, PodmanEngine
from tests.e2e.conftest import e2e_dir, rootfs_tar, runtime, token  # noqa: F401 (fixtures)
from tests.e2e.cleanup import CgroupParent, remove_empty_dirs
from tests.support.runtime import wait_until

MiB = 1 << 20


# podman under TCG on a loaded host: `import` alone took over the e2e
# tests' 60 s bound.
GUEST_TIMEOUT = 300


class DefaultCgroupsEngine(PodmanEngine):
    """The e2e engine without `--cgroup-manager cgroupfs`: podman's default."""

    def __call__(self, *args, timeout=GUEST_TIMEOUT, **kw):
        return super().__call__(*args, timeout=max(timeout, GUEST_TIMEOUT), **kw)

    def argv(self, *args, runtime=None):
        argv = super().argv(*args, runtime=runtime)
        i = argv.index("--cgroup-manager")
        return argv[:i] + argv[i + 2:]


@pytest.fixture(scope="module")
def podman_engine(runtime, e2e_dir, rootfs_tar):  # noqa: F811
    e2e.require_binaries("podman", "conmon")
    parent = CgroupParent("libpod_parent")
    root_existed = os.path.exists(runtime.default_root)
    engine = DefaultCgroupsEngine(os.path.join(e2e_dir, "podman"), runtime)
    bound, podman_module.PODMAN_TIMEOUT = podman_module.PODMAN_TIMEOUT, GUEST_TIMEOUT  # import, detach
    try:
        engine.import_image(rootfs_tar)
        yield engine
        engine.remove_images()
    finally:
        podman_module.PODMAN_TIMEOUT = bound
        parent.remove_new()
        if not root_existed:
            remove_empty_dirs(runtime.default_root)


@pytest.fixture
def podman(podman_engine, runtime, token):  # noqa: F811
    containers = PodmanContainers(podman_engine, token)
    yield containers
    problems = containers.remove_all()
    e2e.fail_on_leaks(problems, runtime.default_root, token, containers.ids(), [podman_engine.base])


def test_podman_picks_cgroupfs_and_v2(podman):
    out = podman("info", "--format", "{{.Host.CgroupManager}} {{.Host.CgroupsVersion}}").stdout.split()
    assert out == ["cgroupfs", "v2"]


def test_podman_run_prints_the_limits_the_container_sees(podman):
    script = "cd /sys/fs/cgroup && cat memory.max pids.max cpu.max"
    out = podman.run("--rm", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", IMAGE, "sh", "-c", script,
                     timeout=GUEST_TIMEOUT)
    assert out.stdout.split("\n")[:3] == [str(64 * MiB), "50", "50000 100000"], out.stdout


def test_podman_limits_exec_stop_rm(podman, runtime):
    name = podman.detach("--memory", "96m", "--pids-limit", "40", "--cpus", "1.5", IMAGE,
                         "sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done")
    assert podman("inspect", "--format", "{{.OCIRuntime}}", name).stdout.strip() == runtime.path
    wait_until(lambda: "ready" in podman("logs", name).stdout.split(), 60, f"{name} to be ready")
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
    with open(f"/proc/{pid}/cgroup") as f:
        (line,) = f.read().splitlines()
    directory = "/sys/fs/cgroup" + line.split(":", 2)[2]
    assert "/libpod_parent/" in directory, directory  # cgroupfs: podman's own parent, no systemd slice
    host = {n: open(os.path.join(directory, n)).read().strip() for n in ("memory.max", "pids.max", "cpu.max")}
    assert host == {"memory.max": str(96 * MiB), "pids.max": "40", "cpu.max": "150000 100000"}

    inside = podman("exec", name, "sh", "-c", "cd /sys/fs/cgroup && cat memory.max pids.max cpu.max; "
                                              "cat /proc/self/cgroup").stdout.splitlines()
    assert inside == [str(96 * MiB), "40", "150000 100000", "0::/"], inside

    podman("stop", "--time", "20", name)
    assert podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.strip() == "exited 7"
    podman("rm", name)
    assert podman("container", "exists", name, check=False).returncode == 1
    wait_until(lambda: not os.path.exists(directory), 10, f"{directory} to be removed")
