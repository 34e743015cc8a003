"""The VM stage's tests: cgroup v2 as users' hosts have it, in the guest
tests/vm/harness.py boots. Elsewhere they are skipped (the host suite
collects them too): they need /sys/fs/cgroup to be cgroup2 holding the
memory, cpu, io, pids, cpuset and hugetlb controllers.

The integration fixtures (`env`: own --root, bundles, leak check) are
reused as they are."""

import os

import pytest

from tests.integration.conftest import Env, rootfs_template, subreaper  # noqa: F401 (fixtures)
from tests.support import leaks
from tests.support.runtime import Runtime, reap_orphans

REQUIRED = {"memory", "cpu", "io", "pids", "cpuset", "hugetlb"}
# Under qemu's TCG on a loaded 2-core machine one runtime call can take
# tens of seconds: a bound that fails only what hangs.
CALL_TIMEOUT = 120


class GuestRuntime(Runtime):
    def __call__(self, *args, timeout=CALL_TIMEOUT, **kw):
        return super().__call__(*args, timeout=max(timeout, CALL_TIMEOUT), **kw)


@pytest.fixture
def env(tmp_path, rootfs_template):  # noqa: F811
    """The integration tests' env (tests/integration/conftest.py), with
    the guest's longer bound on each runtime call."""
    e = Env(tmp_path, rootfs_template)
    e.rt = GuestRuntime(e.root, log=e.rt.log)
    yield e
    e.rt.cleanup()
    reap_orphans()
    found = leaks.check(e.token, [e.tmp], e.root)
    if found:
        leaks.release(e.token, [e.tmp])
        reap_orphans()
        pytest.fail("leaked: " + "; ".join(found), pytrace=False)


def pure_v2():
    """True where /sys/fs/cgroup is cgroup2 with the controllers the stage tests."""
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return REQUIRED <= set(f.read().split())
    except FileNotFoundError:
        return False


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0 and pure_v2():
        return
    skip = pytest.mark.skip(reason="needs root on a pure cgroup v2 host: the VM stage runs it "
                                   "(bash tests/vm/run.sh)")
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(skip)
