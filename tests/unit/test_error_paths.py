"""The one line of a failure on a path names the operation and the path."""

import errno
import os

import pytest

from runsc_py.errors import os_error_text
from runsc_py.linux import unix


def test_listen_failure_names_the_socket_path(tmp_path):
    path = str(tmp_path / "missing-dir" / "x.sock")
    with pytest.raises(OSError) as info:
        unix.listen(path)
    assert os_error_text(info.value) == f"cannot listen on {path}: No such file or directory"


def test_connect_failure_names_the_socket_path(tmp_path):
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(OSError) as info:
        unix.connect(path, 1)
    assert isinstance(info.value, FileNotFoundError)  # callers may still tell the kinds apart
    assert os_error_text(info.value) == f"cannot connect to {path}: No such file or directory"


def test_a_long_socket_path_is_named_in_full(tmp_path):
    directory = tmp_path / ("d" * 120)
    path = str(directory / "x.sock")
    with pytest.raises(OSError) as info:
        unix.listen(path)  # too long for sun_path: its missing directory fails first
    assert os_error_text(info.value) == f"cannot listen on {path}: No such file or directory"


def test_a_filesystem_without_sockets_gets_the_hint():
    err = OSError(errno.ENXIO, os.strerror(errno.ENXIO), "/shared/root/c/x.sock")
    err.socket_action = "listen on"
    assert os_error_text(err) == ("cannot listen on /shared/root/c/x.sock: No such device or address "
                                  "(the root directory's filesystem cannot hold unix sockets; use a local --root)")


def test_other_errors_keep_path_and_lower_case():
    err = OSError(errno.EROFS, os.strerror(errno.EROFS), "/sys/fs/cgroup/x/memory.max")
    assert os_error_text(err) == "/sys/fs/cgroup/x/memory.max: read-only file system"
