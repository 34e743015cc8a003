"""Fixtures for integration tests: real containers on the real kernel.

Every test gets its own runtime root and bundle directory under a temp dir
and a token in all its container ids; afterwards it must have left nothing
behind (processes, mounts, cgroups, files) or it fails, naming the leak."""

import os
import secrets

import pytest

from tests.support import leaks
from tests.support.busybox import default_config, make_rootfs, write_config
from tests.support.runtime import Runtime, become_subreaper, reap_orphans


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def subreaper():
    """Like conmon or containerd's shim: orphaned sandboxes come to us."""
    if os.geteuid() == 0:
        become_subreaper()
    yield
    reap_orphans()


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    return make_rootfs(str(tmp_path_factory.mktemp("rootfs-template") / "rootfs"))


class Env:
    """One test's world: token, runtime, bundles."""

    def __init__(self, tmp_path, template):
        self.token = "t" + secrets.token_hex(4)
        self.tmp = str(tmp_path)
        self.root = os.path.join(self.tmp, "root")
        self.rt = Runtime(self.root, log=os.path.join(self.tmp, "runtime.log"))
        self.template = template
        self._n = 0

    def cid(self, name="c"):
        return f"{self.token}-{name}"

    def bundle(self, args=("sh",), config=None, **process):
        """A bundle with its own rootfs (containers may write to it)."""
        self._n += 1
        path = os.path.join(self.tmp, f"bundle{self._n}")
        rootfs = os.path.join(path, "rootfs")
        os.makedirs(path)
        import shutil
        shutil.copytree(self.template, rootfs, symlinks=True)
        if config is None:
            config = default_config(args)
        config["root"] = {"path": "rootfs", "readonly": config.get("root", {}).get("readonly", False)}
        config["process"].update(process)
        write_config(path, config)
        return path


@pytest.fixture
def env(tmp_path, rootfs_template):
    e = Env(tmp_path, rootfs_template)
    yield e
    e.rt.cleanup()
    reap_orphans()
    found = leaks.check(e.token, [e.tmp], e.root)
    if found:
        leaks.release(e.token, [e.tmp])
        reap_orphans()
        pytest.fail("leaked: " + "; ".join(found), pytrace=False)
