"""A create that fails at any step leaves nothing behind: runtime-spec
runtime.md, create: on error "the container MUST NOT be created ... as if
the operation were never attempted". The env fixture's leak check fails a
test that leaves a process, mount or cgroup; each case also checks the
root and the one-line error."""

import os
import stat

import pytest

from tests.support.busybox import read_config, write_config


def _bind(source):
    return lambda config, env: config["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": source, "options": ["rbind"]})


def _namespace(kind, path):
    def change(config, env):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != kind]
        config["linux"]["namespaces"].append({"type": kind, "path": path})
    return change


def _mount(entry):
    return lambda config, env: config["mounts"].append(entry)


def _process(**fields):
    return lambda config, env: config["process"].update(fields)


def _not_executable(config, env):
    path = os.path.join(env.last_bundle, "rootfs", "bin", "plain")
    with open(path, "w") as f:
        f.write("not a program\n")
    os.chmod(path, 0o644)
    config["process"]["args"] = ["/bin/plain"]


def _cwd_is_a_file(config, env):
    config["process"]["cwd"] = "/etc/passwd"


def _failing_hook(kind):
    return lambda config, env: config.setdefault("hooks", {}).update({kind: [{"path": "/bin/false"}]})


CASES = {
    "bind source missing": (_bind("/nonexistent/source"), "no such file or directory"),
    "namespace path missing": (_namespace("network", "/nonexistent/netns"), "/nonexistent/netns"),
    "namespace of the wrong type": (_namespace("ipc", "/proc/self/ns/net"), "is not a ipc namespace"),
    "unknown file system type": (_mount({"destination": "/x", "type": "nosuchfs", "source": "x"}), "mounts["),
    "bad tmpfs option": (_mount({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["size=lots"]}), "mounts["),
    "executable missing": (_process(args=["/bin/nosuch"]), "no such file or directory"),
    "executable not in PATH": (_process(args=["nosuch"]), "executable file not found"),
    "not executable": (_not_executable, "permission denied"),
    "cwd is a file": (_cwd_is_a_file, "not a directory"),
    "failing createRuntime hook": (_failing_hook("createRuntime"), "createRuntime"),
    "failing createContainer hook": (_failing_hook("createContainer"), "createContainer"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failed_create_leaves_nothing(env, case):
    change, wording = CASES[case]
    bundle = env.bundle(["true"])
    env.last_bundle = bundle
    config = read_config(bundle)
    change(config, env)
    write_config(bundle, config)
    result = env.rt("create", "--bundle", bundle, env.cid(), check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert wording in lines[0], lines[0]
    assert not os.path.exists(env.root) or os.listdir(env.root) == []
    # And the id is free again.
    env.rt("create", "--bundle", env.bundle(["true"]), env.cid())
    env.rt("delete", env.cid())


def test_unwritable_pid_file_leaves_nothing(env):
    pid_file = os.path.join(env.tmp, "missing-dir", "pid")
    result = env.rt("create", "--bundle", env.bundle(["true"]), "--pid-file", pid_file, env.cid(), check=False)
    assert result.returncode == 1 and "--pid-file" in result.stderr
    assert os.listdir(env.root) == []


def test_console_socket_missing_leaves_nothing(env):
    bundle = env.bundle(["true"])
    config = read_config(bundle)
    config["process"]["terminal"] = True
    write_config(bundle, config)
    result = env.rt("create", "--bundle", bundle, "--console-socket", os.path.join(env.tmp, "nope.sock"),
                    env.cid(), check=False)
    assert result.returncode == 1 and "--console-socket" in result.stderr
    assert os.listdir(env.root) == []


def test_rootfs_missing_is_one_line(env):
    bundle = env.bundle(["true"])
    config = read_config(bundle)
    config["root"]["path"] = "no-such-rootfs"
    write_config(bundle, config)
    result = env.rt("create", "--bundle", bundle, env.cid(), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"runsc-py: config.json: root.path: {bundle}/no-such-rootfs does not exist"
    assert not os.path.exists(env.root)


def test_read_only_pid_file_directory(env):
    directory = os.path.join(env.tmp, "ro")
    os.makedirs(directory)
    os.chmod(directory, stat.S_IRUSR | stat.S_IXUSR)
    # root ignores mode bits: make the directory a read-only mount instead.
    os.system(f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}")
    try:
        result = env.rt("create", "--bundle", env.bundle(["true"]), "--pid-file", os.path.join(directory, "pid"),
                        env.cid(), check=False)
    finally:
        os.system(f"umount {directory}")
    assert result.returncode == 1 and "read-only file system" in result.stderr
    assert os.listdir(env.root) == []
