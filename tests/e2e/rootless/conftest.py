"""Fixtures of the rootless tests: an unprivileged user with subordinate
ids (made from root, idempotently), the runtime installed where that user
can run it, rootless podman with its state in a temp dir, and after each
test a check that nothing of it is left (processes, runtime state).
"""

import os
import shutil
import signal
import tempfile
import time

import pytest

from tests.e2e.cleanup import remove_tree
from tests.e2e.images import IMAGE, PATH_ENV, write_rootfs_tar
from tests.e2e.rootless import harness
from tests.e2e.runtime_under_test import REPO

LEAK_GRACE = 10


def pytest_configure(config):
    config.addinivalue_line("markers", "rootless: runs as an unprivileged user (made by the fixtures)")


def pytest_collection_modifyitems(items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.rootless)


@pytest.fixture(scope="package")
def rootless_runtime():
    """The runtime binary the unprivileged users run: E2E_RUNTIME if set
    (runc, to show the tests check the contract), else runsc-py of this
    checkout in a venv they can execute."""
    if os.geteuid() != 0:
        pytest.skip("the rootless tests make their users as root")
    missing = [n for n in ("runuser", "useradd", "newuidmap", "newgidmap", "podman", "conmon")
               if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (tests/setup.sh installs them)")
    if not harness.reachable_by_others(REPO / "pyproject.toml"):
        pytest.skip(f"{REPO} is not reachable by other users: the rootless users cannot run it")
    return os.environ.get("E2E_RUNTIME") or harness.user_runtime()


@pytest.fixture(scope="package")
def rootless_dir():
    """Everything of the rootless tests; other users may pass through it."""
    path = tempfile.mkdtemp(prefix="runsc-py-rootless-")
    os.chmod(path, 0o755)
    yield path
    remove_tree(path)


@pytest.fixture(scope="package")
def victim(rootless_runtime, rootless_dir):
    """The unprivileged user of the tests, with an XDG_RUNTIME_DIR of its own."""
    entry = harness.ensure_user(harness.VICTIM)
    xdg = os.path.join(rootless_dir, "xdg")
    os.mkdir(xdg, 0o700)
    user = harness.User(entry, xdg)
    user.own(xdg)
    yield user
    _kill(user.processes())


@pytest.fixture(scope="package")
def other_user(rootless_runtime):
    return harness.User(harness.ensure_user(harness.OTHER))


@pytest.fixture(scope="package")
def rootfs_tar(rootless_dir):
    path = write_rootfs_tar(os.path.join(rootless_dir, "busybox-rootfs.tar"))
    os.chmod(path, 0o644)
    return path


class RootlessPodman:
    """podman run by the unprivileged user, all its state under `base`."""

    def __init__(self, user, base, runtime):
        self.user = user
        self.base = base
        self.runtime = runtime
        self.dirs = {k: os.path.join(base, k) for k in ("storage", "runroot", "tmp", "networks")}
        for d in self.dirs.values():
            os.makedirs(d)
        name = os.path.basename(runtime)
        self.conf = os.path.join(base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(f'[engine]\nlock_type = "file"\nconmon_env_vars = ["{PATH_ENV}", '
                    f'"TMPDIR={self.dirs["tmp"]}"]\nruntime_supports_json = ["{name}"]\n'
                    f'[engine.runtimes]\n{name} = ["{runtime}"]\n')
        self.storage_conf = os.path.join(base, "storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{self.dirs["storage"]}"\n'
                    f'runroot = "{self.dirs["runroot"]}"\n')
        user.own(base)

    def __call__(self, *args, timeout=60, check=True):
        return self.user("podman", "--root", self.dirs["storage"], "--runroot", self.dirs["runroot"],
                         "--tmpdir", self.dirs["tmp"], "--network-config-dir", self.dirs["networks"],
                         "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                         "--runtime", self.runtime, *args, timeout=timeout, check=check,
                         CONTAINERS_CONF=self.conf, CONTAINERS_STORAGE_CONF=self.storage_conf,
                         TMPDIR=self.dirs["tmp"])


@pytest.fixture(scope="package")
def rootless_podman(victim, rootless_dir, rootless_runtime, rootfs_tar):
    engine = RootlessPodman(victim, os.path.join(rootless_dir, "podman"), rootless_runtime)
    engine("import", "--change", "CMD=sh", rootfs_tar, IMAGE, timeout=120)
    yield engine
    try:
        engine("rm", "--all", "--force", "--time", "0", check=False)
        engine("rmi", "--all", "--force", check=False)
    finally:
        _kill([p for p in [pause_process(victim)] if p])


def pause_process(user):
    """podman's process that holds the user's namespace between commands."""
    try:
        with open(os.path.join(user.xdg_runtime_dir, "libpod", "tmp", "pause.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def runtime_root(user, runtime) -> str:
    """Where the runtime keeps the user's state: $XDG_RUNTIME_DIR/<name>."""
    return os.path.join(user.xdg_runtime_dir, os.path.basename(runtime))


@pytest.fixture
def no_leaks(victim, rootless_runtime):
    """After the test: no process of the user's is left but podman's pause
    process, and the runtime's state root holds nothing; what is found is
    named, and its processes are killed."""
    before = set(victim.processes())
    root = runtime_root(victim, rootless_runtime)
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        left = [p for p in victim.processes() if p not in before and p != pause_process(victim)]
        state = sorted(os.listdir(root)) if os.path.isdir(root) else []
        if not (left or state) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    _kill(left)
    problems = [f"process {p} ({_cmdline(p)}) left running" for p in left]
    problems += [f"runtime state left in {root}: {name}" for name in state]
    assert not problems, "; ".join(problems)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "gone"


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
