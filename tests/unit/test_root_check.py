"""The state root's ownership and mode check, --rootless and the default root."""

import os
import subprocess
import sys

import pytest

from runsc_py import rootless
from runsc_py.errors import Failure
from runsc_py.state_file import check_root, ensure_root

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
OTHER_UID = 4242


@pytest.fixture(autouse=True)
def fresh_rootless():
    yield
    rootless.configure("auto")


def test_missing_root_passes(tmp_path):
    check_root(str(tmp_path / "absent"))


def test_own_root_passes(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o711)
    check_root(str(root))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_root_writable_by_group_or_others_is_refused(tmp_path, mode):
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, mode)
    with pytest.raises(Failure, match=rf"root directory {root} is writable by group or others \(mode {mode:04o}\)"):
        check_root(str(root))


@needs_root
def test_root_owned_by_another_user_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o711)
    os.chown(root, OTHER_UID, OTHER_UID)
    with pytest.raises(Failure, match=rf"root directory {root} is owned by uid {OTHER_UID}, not by this user"):
        check_root(str(root))


@needs_root
def test_ensure_root_refuses_an_existing_foreign_directory(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o711)
    os.chown(root, OTHER_UID, OTHER_UID)
    with pytest.raises(Failure, match="owned by uid"):
        ensure_root(str(root))


def test_ensure_root_creates_and_checks(tmp_path):
    root = tmp_path / "a" / "root"
    ensure_root(str(root))
    assert root.is_dir() and not root.stat().st_mode & 0o022


def test_not_a_directory_is_refused(tmp_path):
    root = tmp_path / "root"
    root.write_text("")
    with pytest.raises(Failure, match="is not a directory"):
        check_root(str(root))


def test_symlink_to_own_directory_passes(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    check_root(str(tmp_path / "link"))


@needs_root
def test_symlink_to_foreign_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.chown(tmp_path / "real", OTHER_UID, OTHER_UID)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(Failure, match="owned by uid"):
        check_root(str(tmp_path / "link"))


@needs_root
def test_foreign_symlink_is_refused(tmp_path):
    """Its owner could point it elsewhere after the check."""
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.lchown(tmp_path / "link", OTHER_UID, OTHER_UID)
    with pytest.raises(Failure, match=rf"symbolic link {tmp_path / 'link'} is owned by uid {OTHER_UID}"):
        check_root(str(tmp_path / "link"))


def test_rootless_setting():
    rootless.configure("true")
    assert rootless.active()
    rootless.configure("false")
    assert not rootless.active()


def test_rootless_auto_follows_the_user_namespace():
    rootless.configure("auto")
    with open("/proc/self/uid_map") as f:
        maps_root = any(line.split()[1] == "0" for line in f)
    assert rootless.active() == (os.geteuid() != 0 or not maps_root)


def test_default_roots(monkeypatch):
    rootless.configure("false")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert rootless.default_root() == "/run/runsc-py"  # root ignores XDG_RUNTIME_DIR
    rootless.configure("true")
    assert rootless.default_root() == "/run/user/7/runsc-py"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert rootless.default_root() == f"/tmp/runsc-py-{rootless.host_uid()}"


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "runsc_py", *argv], capture_output=True, text=True, timeout=30)


def test_cli_refuses_a_root_writable_by_others_in_one_line(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    result = _cli("--root", str(root), "list")
    assert result.returncode == 1
    assert result.stderr == f"runsc-py: root directory {root} is writable by group or others (mode 0777): refusing to use it\n"


def test_cli_spec_does_not_use_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    result = _cli("--root", str(root), "spec", "--bundle", str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_cli_rejects_an_unknown_rootless_value(tmp_path):
    result = _cli("--root", str(tmp_path), "--rootless", "maybe", "list")
    assert result.returncode != 0
    assert "maybe" in result.stderr
