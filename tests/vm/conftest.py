"""The VM stage's tests: cgroup v2 as users' hosts have it, in the guest
tests/vm/harness.py boots. Elsewhere they are skipped (the host suite
collects them too): they need /sys/fs/cgroup to be cgroup2 holding the
memory, cpu, io, pids, cpuset and hugetlb controllers.

The integration fixtures (`env`: own --root, bundles, leak check) are
reused as they are."""

import os

import pytest

from tests.integration.conftest import env, rootfs_template, subreaper  # noqa: F401 (fixtures)

REQUIRED = {"memory", "cpu", "io", "pids", "cpuset", "hugetlb"}


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
