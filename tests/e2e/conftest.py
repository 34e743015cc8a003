"""Fixtures for end-to-end tests: real podman, containerd and dockerd running
containers with the runtime under test (E2E_RUNTIME, see runtime_under_test).

Each engine is set up once for all the tests here, with its own state in
a temp dir and a locally built busybox image, and torn down (images,
daemon, dirs) after the last of them. Each test's containers carry a
token in their names; after the test they are force-removed, and if
anything of them is left (runtime state, processes, cgroups, mounts) the
test fails naming it, and its processes and cgroups are removed.
"""

import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.e2e import leakcheck
from tests.e2e.cleanup import CgroupParent, remove_empty_dirs, remove_tree
from tests.e2e.containerd import NAMESPACE, RUNTIME_ROOT, ContainerdDaemon, CtrContainers, config_version
from tests.e2e.docker import DockerContainers, DockerDaemon, client_binary
from tests.e2e.images import IMAGE, write_docker_archive, write_oci_archive, write_rootfs_tar
from tests.e2e.podman import PodmanContainers, PodmanEngine
from tests.e2e.runtime_under_test import from_environment

TEST_TIMEOUT = 90
# processes of a removed container (conmon, a shim) may take a moment to exit
LEAK_GRACE = 10


class ScenarioTimeout(Exception):
    """The test ran longer than TEST_TIMEOUT."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Bound every test: SIGALRM interrupts whatever it waits for (a
    subprocess being waited for is killed by subprocess.run)."""
    def on_alarm(signum, frame):
        raise ScenarioTimeout(f"{item.nodeid} ran longer than {TEST_TIMEOUT}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def require_binaries(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (tests/setup.sh installs them)")


@pytest.fixture(scope="package")
def runtime():
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests need root")
    try:
        return from_environment()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="package")
def e2e_dir(runtime):
    """The temp dir of all e2e tests: images, both engines' state, test files."""
    path = tempfile.mkdtemp(prefix="runsc-py-e2e-")
    yield path
    remove_tree(path)


@pytest.fixture(scope="package")
def rootfs_tar(e2e_dir):
    return write_rootfs_tar(os.path.join(e2e_dir, "busybox-rootfs.tar"))


@pytest.fixture(scope="package")
def podman_engine(runtime, e2e_dir, rootfs_tar):
    require_binaries("podman", "conmon")
    cgroup_parent = CgroupParent("libpod_parent")
    # podman passes the runtime no --root: it uses its default one
    runtime_root_existed = os.path.exists(runtime.default_root)
    engine = PodmanEngine(os.path.join(e2e_dir, "podman"), runtime)
    try:
        engine.import_image(rootfs_tar)
        yield engine
        engine.remove_images()
    finally:
        cgroup_parent.remove_new()
        if not runtime_root_existed:
            remove_empty_dirs(runtime.default_root)


@pytest.fixture(scope="package")
def containerd_daemon(runtime, e2e_dir, rootfs_tar):
    require_binaries("containerd", "ctr", "containerd-shim-runc-v2")
    version = config_version()
    cgroup_parent = CgroupParent(NAMESPACE)
    daemon = ContainerdDaemon(os.path.join(e2e_dir, "containerd"))
    os.makedirs(daemon.base)
    try:
        daemon.start(version)
        daemon.import_image(write_oci_archive(os.path.join(e2e_dir, "busybox-oci.tar"), rootfs_tar, IMAGE))
        yield daemon
        daemon.remove_images()
    finally:
        daemon.stop()
        daemon.remove()
        cgroup_parent.remove_new()


@pytest.fixture(scope="module")
def docker_daemon(runtime, e2e_dir, rootfs_tar):
    """One dockerd for the Docker tests (started only for them: it is the
    slowest engine to start and stop)."""
    require_binaries("dockerd", "containerd", "containerd-shim-runc-v2", "docker-init")
    if client_binary() is None:
        pytest.skip("no docker client installed (tests/setup.sh installs docker.io)")
    # the cgroup parent of cgroupfs-driven containers, /docker
    cgroup_parent = CgroupParent("docker")
    daemon = DockerDaemon(os.path.join(e2e_dir, "docker"), runtime)
    os.makedirs(daemon.base)
    try:
        daemon.start()
        daemon.load_image(write_docker_archive(os.path.join(e2e_dir, "busybox-docker.tar"), rootfs_tar, IMAGE))
        yield daemon
    finally:
        daemon.stop()
        daemon.remove()
        cgroup_parent.remove_new()


@pytest.fixture
def token():
    """In every name and id of the test's containers."""
    return "e2e" + secrets.token_hex(4)


@pytest.fixture
def test_dir(e2e_dir, token):
    """The test's own files (bind mount sources, logs), removed with e2e_dir."""
    return Path(tempfile.mkdtemp(prefix=f"{token}-", dir=e2e_dir))


@pytest.fixture
def podman(podman_engine, runtime, token):
    """The test's podman containers; removed afterwards, leaks reported."""
    containers = PodmanContainers(podman_engine, token)
    yield containers
    problems = containers.remove_all()
    fail_on_leaks(problems, runtime.default_root, token, containers.ids(), [podman_engine.base])


@pytest.fixture
def containerd(containerd_daemon, runtime, token):
    """The test's containerd containers; removed afterwards, leaks reported."""
    containers = CtrContainers(containerd_daemon, runtime, token)
    yield containers
    problems = containers.remove_all()
    fail_on_leaks(problems, RUNTIME_ROOT, token, containers.ids, [containerd_daemon.base])


@pytest.fixture
def docker(docker_daemon, token):
    """The test's Docker containers; removed afterwards, leaks reported."""
    containers = DockerContainers(docker_daemon, token)
    yield containers
    problems = containers.remove_all()
    fail_on_leaks(problems, docker_daemon.runtime_root, token, containers.ids(),
                  docker_daemon.container_dirs())


def fail_on_leaks(problems, root, token, ids, engine_dirs):
    """Fail the test naming its leftovers, after killing its processes and
    removing its cgroups (only what names the test is touched)."""
    leaks = leakcheck.lasting_leaks(lambda: leakcheck.find_leaks(root, token, ids, engine_dirs), LEAK_GRACE)
    leakcheck.release(leaks)
    messages = problems + leaks.descriptions
    if messages:
        pytest.fail("left behind: " + "; ".join(messages), pytrace=False)
