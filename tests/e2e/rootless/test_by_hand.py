"""The runtime run by hand by an unprivileged user (no engine): a bundle
from `spec --rootless`, the lifecycle commands, id ranges through
newuidmap/newgidmap, refusals, and a state root another user planted."""

import json
import os
import shutil
import tempfile

import pytest

from tests.e2e.commands import run
from tests.e2e.rootless import harness
from tests.e2e.rootless.conftest import runtime_root
from tests.support.busybox import make_rootfs
from tests.support.runtime import wait_until


@pytest.fixture(autouse=True)
def runsc_py_only(rootless_runtime):
    if os.path.basename(rootless_runtime) != "runsc-py":
        pytest.skip("by-hand tests use runsc-py's commands and wording")


def make_bundle(user, runtime, parent, args, edit=None) -> str:
    """A bundle the user owns: busybox rootfs, config from `spec --rootless`."""
    bundle = tempfile.mkdtemp(prefix="bundle-", dir=parent)
    os.chmod(bundle, 0o755)
    make_rootfs(os.path.join(bundle, "rootfs"))
    user.own(bundle)
    user(runtime, "spec", "--rootless", cwd=bundle)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args)
    if edit:
        edit(config)
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def test_spec_rootless_maps_the_callers_ids(victim, rootless_runtime, rootless_dir):
    bundle = make_bundle(victim, rootless_runtime, rootless_dir, ["true"])
    with open(os.path.join(bundle, "config.json")) as f:
        linux = json.load(f)["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": victim.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": victim.gid, "size": 1}]


def test_run(victim, rootless_runtime, rootless_dir, no_leaks):
    bundle = make_bundle(victim, rootless_runtime, rootless_dir,
                         ["sh", "-c", "id -u; cat /proc/self/uid_map; echo hi > /tmp/x; cat /tmp/x"],
                         edit=lambda c: c["root"].update(readonly=False))
    result = victim(rootless_runtime, "run", "by-hand-run", cwd=bundle)
    lines = result.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(victim.uid), "1"]
    assert lines[2] == "hi"


def test_lifecycle(victim, rootless_runtime, rootless_dir, no_leaks):
    rt = rootless_runtime
    cid = "by-hand-life"
    bundle = make_bundle(victim, rt, rootless_dir, ["sleep", "1000"])
    victim(rt, "create", "--bundle", bundle, cid)
    try:
        assert json.loads(victim(rt, "state", cid).stdout)["status"] == "created"
        victim(rt, "start", cid)
        assert json.loads(victim(rt, "state", cid).stdout)["status"] == "running"
        assert cid in victim(rt, "list", "--quiet").stdout.split()
        # the sandbox is not dumpable: exec and ps get its namespaces from it
        assert victim(rt, "exec", cid, "sh", "-c", "echo in-$(id -u)").stdout == "in-0\n"
        pids = json.loads(victim(rt, "ps", "--format", "json", cid).stdout)
        assert len(pids) == 2  # the sandbox and sleep
        paused = victim(rt, "pause", cid, check=False)
        if paused.returncode == 0:
            assert json.loads(victim(rt, "state", cid).stdout)["status"] == "paused"
            victim(rt, "resume", cid)
        else:  # no freezer delegated to this user: refused in one line
            assert paused.stderr.strip().splitlines() == [f'runsc-py: container "{cid}" has no cgroup freezer: it cannot be paused']
        victim(rt, "kill", cid, "KILL")
        wait_until(lambda: json.loads(victim(rt, "state", cid).stdout)["status"] == "stopped", 10,
                   f"{cid} to stop")
    finally:
        victim(rt, "delete", "--force", cid)
    assert cid not in victim(rt, "list", "--quiet").stdout.split()


def test_id_ranges_through_newuidmap(victim, rootless_runtime, rootless_dir, no_leaks):
    uid_start, _ = harness.subid_range("/etc/subuid", victim.name)
    gid_start, _ = harness.subid_range("/etc/subgid", victim.name)

    def ranges(config):
        linux = config["linux"]
        linux["uidMappings"] = [{"containerID": 0, "hostID": victim.uid, "size": 1},
                                {"containerID": 1, "hostID": uid_start, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": victim.gid, "size": 1},
                                {"containerID": 1, "hostID": gid_start, "size": 65536}]
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}

    bundle = make_bundle(victim, rootless_runtime, rootless_dir,
                         ["sh", "-c", "id; cat /proc/self/uid_map"], edit=ranges)
    result = victim(rootless_runtime, "run", "by-hand-ranges", cwd=bundle)
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1000 groups=10"
    assert [line.split() for line in lines[1:]] == [["0", str(victim.uid), "1"], ["1", str(uid_start), "65536"]]


def test_range_not_granted_is_refused(victim, rootless_runtime, rootless_dir, no_leaks):
    def foreign(config):
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": victim.uid, "size": 1},
                                          {"containerID": 1, "hostID": 10, "size": 5}]

    bundle = make_bundle(victim, rootless_runtime, rootless_dir, ["true"], edit=foreign)
    result = victim(rootless_runtime, "run", "by-hand-foreign", cwd=bundle, check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("runsc-py: linux.uidMappings: newuidmap failed"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_resource_without_delegation_is_refused_by_field(victim, rootless_runtime, rootless_dir, no_leaks):
    if victim("test", "-w", "/sys/fs/cgroup/memory", check=False).returncode == 0:
        pytest.skip("a memory cgroup is delegated to the user here")

    def limit(config):
        config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}

    bundle = make_bundle(victim, rootless_runtime, rootless_dir, ["true"], edit=limit)
    result = victim(rootless_runtime, "run", "by-hand-limit", cwd=bundle, check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("runsc-py: linux.resources.memory.limit: not supported rootless"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_planted_root_is_refused_and_runs_no_hook(victim, other_user, rootless_runtime, rootless_dir, no_leaks):
    """Another user makes the victim's default root (no XDG_RUNTIME_DIR:
    /tmp/runsc-py-<uid>) first and leaves a container in it whose poststop
    hook would run as whoever deletes it. The victim's commands refuse the
    root; the hook, which only the victim could run, never runs."""
    rt = rootless_runtime
    planted = f"/tmp/runsc-py-{victim.uid}"
    shutil.rmtree(planted, ignore_errors=True)
    marker = os.path.join(victim.home, "planted-hook-ran")
    if os.path.exists(marker):
        os.unlink(marker)

    def hook(config):
        config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}

    bundle = make_bundle(other_user, rt, rootless_dir, ["true"], edit=hook)
    other_user("mkdir", "-m", "0711", planted)
    try:
        other_user(rt, "--root", planted, "create", "--bundle", bundle, "planted")
        other_user(rt, "--root", planted, "start", "planted")
        wait_until(lambda: json.loads(other_user(rt, "--root", planted, "state", "planted").stdout)["status"]
                   == "stopped", 10, "the planted container to stop")
        # a stopped container, everything open to the victim: without the
        # check the victim's delete removes it and runs the hook
        other_user("chmod", "-R", "a+rwX", planted)
        for argv in (["delete", "--force", "planted"], ["list"], ["state", "planted"],
                     ["--root", planted, "delete", "planted"]):
            result = victim(rt, *argv, check=False, XDG_RUNTIME_DIR=None)
            assert result.returncode == 1, (argv, result)
            assert result.stderr.strip().splitlines() == [
                f"runsc-py: root directory {planted} is owned by uid {other_user.uid}, "
                f"not by this user (uid {victim.uid}): refusing to use it"], (argv, result.stderr)
        assert not os.path.exists(marker)
    finally:
        other_user(rt, "--root", planted, "delete", "--force", "planted", check=False)
        shutil.rmtree(planted, ignore_errors=True)
    assert not os.path.exists(marker)


def test_root_writable_by_others_is_refused(victim, rootless_runtime, no_leaks):
    root = runtime_root(victim, rootless_runtime)
    victim("mkdir", "-p", root)
    os.chmod(root, 0o777)
    try:
        result = victim(rootless_runtime, "list", check=False)
        assert result.returncode == 1
        assert result.stderr == (f"runsc-py: root directory {root} is writable by group or others "
                                 "(mode 0777): refusing to use it\n")
    finally:
        os.chmod(root, 0o700)


def _cgroup2_mountpoint():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def test_delegated_cgroup_v2_is_used(victim, rootless_runtime, rootless_dir, no_leaks):
    """A cgroup2 subtree the user owns and lives in (what systemd's
    Delegate= gives user@UID.service): the container's cgroup is made
    there, and pause and statistics work through it."""
    mountpoint = _cgroup2_mountpoint()
    if mountpoint is None:
        pytest.skip("no cgroup2 hierarchy on this host")
    rt = rootless_runtime
    cid = "by-hand-delegated"
    delegated = os.path.join(mountpoint, f"runsc-py-rootless-{os.getpid()}")
    os.mkdir(delegated)
    os.mkdir(os.path.join(delegated, "caller"))
    try:
        victim.own(delegated)
        bundle = make_bundle(victim, rt, rootless_dir, ["sleep", "1000"],
                             edit=lambda c: c["linux"].update(cgroupsPath=delegated[len(mountpoint):] + "/" + cid))

        def in_delegated(*argv, check=True):
            # The caller itself lives in the subtree: cgroup v2 lets a
            # process move others only below a cgroup whose cgroup.procs it
            # may write, the common ancestor of source and destination.
            inner = victim.argv(rt, *argv)
            return run(["sh", "-c", f'echo $$ > {delegated}/caller/cgroup.procs && exec "$@"', "sh", *inner],
                       timeout=60, check=check)

        in_delegated("create", "--bundle", bundle, cid)
        try:
            in_delegated("start", cid)
            with open(os.path.join(delegated, cid, "cgroup.procs")) as f:
                assert len(f.read().split()) >= 2  # the sandbox and sleep (the gofer too)
            in_delegated("pause", cid)
            assert json.loads(in_delegated("state", cid).stdout)["status"] == "paused"
            in_delegated("resume", cid)
            stats = json.loads(in_delegated("events", "--stats", cid).stdout)
            assert stats["type"] == "stats" and stats["id"] == cid
        finally:
            in_delegated("delete", "--force", cid)
        assert not os.path.exists(os.path.join(delegated, cid))
    finally:
        for path in (os.path.join(delegated, cid), os.path.join(delegated, "caller"), delegated):
            wait_until(lambda: _rmdir(path), 10, f"{path} to be removed")


def _rmdir(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:  # a process of it has not exited yet
        return False
    return True
