"""`delete --force` of a running container whose record cannot be read
(empty, truncated, garbage, valid JSON of the wrong shape) still kills
everything the container had and removes every file of it, without a pid
from the record: from the cgroup journal, else from the control socket
(runsc_py/container/unrecorded.py). When neither is left it says so with a
non-zero exit. Another container in the same root, and a container of the
same id in another root, are never touched."""

import json
import os

import pytest

from tests.support import leaks
from tests.support.busybox import default_config
from tests.support.runtime import Runtime, assert_one_line_error, wait_for_exit, wait_until
from tests.integration.test_torture_state import files_of, record_path

DAMAGE = {
    "empty": lambda data: b"",
    "truncated": lambda data: data[:len(data) // 2],
    "garbage": lambda data: b"\x00\xff{not json at all",
    "wrong-shape": lambda data: json.dumps({"id": 7, "processes": ["sleep"], "sandbox": "none"}).encode(),
}


def processes_of(root, cid):
    """pid -> what, of a container: its sandbox, gofer and workload (the
    sandbox's children)."""
    record = json.load(open(record_path(root, cid)))
    sandbox, gofer = record["sandbox"]["pid"], record["gofer"]["pid"]
    found = {sandbox: "sandbox", gofer: "gofer"}
    for task in os.listdir(f"/proc/{sandbox}/task"):
        for child in open(f"/proc/{sandbox}/task/{task}/children").read().split():
            found[int(child)] = "workload"
    return found


def running(rt, cid, bundle):
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    found = processes_of(rt.root, cid)
    assert "workload" in found.values()
    return found


def damage(rt, cid, how):
    path = record_path(rt.root, cid)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(DAMAGE[how](data))
    assert_one_line_error(rt("state", cid, check=False), "is corrupt")


def assert_nothing_left(env, cid, pids):
    for pid, what in pids.items():
        assert wait_for_exit(pid, 10), f"the {what} ({pid}) outlived delete --force"
    assert leaks.leaked_processes(cid) == []
    assert leaks.leaked_cgroups(cid) == []
    assert leaks.leaked_mounts([env.tmp]) == []
    assert files_of(env.root, cid) == []


# Besides the record: nothing (the cgroup journal leads to the processes), the
# journal (the control socket leads to the sandbox and its default cgroup).
@pytest.mark.parametrize("lost", ["nothing else", "the cgroup journal"])
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_delete_force_kills_a_container_whose_record_is_unreadable(env, how, lost):
    rt = env.rt
    bundle = env.bundle(["sleep", "1000"])
    bystander, victim = env.cid("bystander"), env.cid("victim")
    bystander_pids = running(rt, bystander, bundle)
    pids = running(rt, victim, bundle)
    damage(rt, victim, how)
    if lost == "the cgroup journal":  # the control socket is then the way to the sandbox
        os.unlink(os.path.join(env.root, f"{victim}_sandbox:{victim}.cgroup"))

    deleted = rt("delete", "--force", victim, check=False)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert_nothing_left(env, victim, pids)

    assert rt.status(bystander) == "running"
    assert all(wait_for_exit(pid, 0) is False for pid in bystander_pids)
    rt("exec", bystander, "true")
    rt("delete", "--force", bystander)


def test_delete_force_says_so_when_nothing_leads_to_the_processes(env):
    """Record, cgroup journal and control socket all gone: the processes
    named after the container (its own, and those of a container of the
    same id in another root) are not signalled on their title alone, and
    the command fails saying so instead of claiming success."""
    rt = env.rt
    other = Runtime(os.path.join(env.tmp, "other-root"), log=os.path.join(env.tmp, "other.log"))
    cid = env.cid("victim")
    pids, cgroup_dirs = {}, []
    try:
        pids = running(rt, cid, env.bundle(["sleep", "1000"]))
        cgroup_dirs = [d["path"] for d in json.load(open(record_path(rt.root, cid)))["cgroup"]["dirs"].values()]
        twin_config = default_config(["sleep", "1000"])
        twin_config["linux"]["cgroupsPath"] = f"/runsc-py/{cid}-twin"  # the default one is taken
        twin = running(other, cid, env.bundle(config=twin_config))
        damage(rt, cid, "garbage")
        base = os.path.join(env.root, f"{cid}_sandbox:{cid}")
        os.unlink(base + ".cgroup")
        os.unlink(base + ".sock")

        deleted = rt("delete", "--force", cid, check=False)
        assert_one_line_error(deleted, "neither its cgroup journal nor its control socket leads to its processes")
        named = {int(p) for p in deleted.stderr.rstrip().rpartition("pid ")[2].split(", ")}
        sandboxes_and_gofers = {p for p, what in {**pids, **twin}.items() if what != "workload"}
        assert named == sandboxes_and_gofers
        assert files_of(env.root, cid) == []  # the files are gone all the same
        assert all(wait_for_exit(pid, 0) is False for pid in {**pids, **twin})  # nobody was signalled
        assert other.status(cid) == "running"
    finally:
        for pid in pids:  # what the test made unfindable, it removes itself
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for pid in pids:
            wait_for_exit(pid, 10)
        for path in cgroup_dirs:
            wait_until(lambda: _rmdir(path), 10, f"removing {path}")
        other.cleanup()
    assert_nothing_left(env, cid, pids)


def _rmdir(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False  # its last process is still leaving
    return True


def test_delete_force_of_an_unreadable_record_of_a_stopped_container(env):
    """Nothing runs any more and nothing leads anywhere: success."""
    rt = env.rt
    cid = env.cid("done")
    rt("create", "--bundle", env.bundle(["true"]), cid)
    sandbox = rt.state(cid)["pid"]
    rt("start", cid)
    assert wait_for_exit(sandbox, 10)
    damage(rt, cid, "empty")
    base = os.path.join(env.root, f"{cid}_sandbox:{cid}")
    for kind in (".cgroup", ".sock"):
        if os.path.exists(base + kind):
            os.unlink(base + kind)
    deleted = rt("delete", "--force", cid, check=False)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert files_of(env.root, cid) == []
