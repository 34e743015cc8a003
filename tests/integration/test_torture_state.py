"""Hostile state, with real containers: records damaged in every way a
crash, a disk or a person can damage them; a read-only root; a full root;
a sandbox pid reused by an unrelated process. Every damaged container
gets one clear line, `delete --force` clears it, and the other containers
in the same root never notice."""

import json
import os
import signal
import subprocess
import time

from runsc_py.linux.proc import start_time
from runsc_py.state_file import VERSION, StateFile
from tests.support.runtime import assert_one_line_error, wait_for_exit, wait_until


def files_of(root, cid):
    return sorted(n for n in os.listdir(root) if n.startswith(f"{cid}_sandbox:"))


def record_path(root, cid):
    return os.path.join(root, f"{cid}_sandbox:{cid}.state")


def as_version_1(record, spec):
    """What version 1 of the record looked like (see state_file's docstring)."""
    old = dict(record, version=1, spec=spec)
    sandbox = old.pop("sandbox")
    old["pid"], old["startTime"] = sandbox["pid"], sandbox["startTime"]
    return old


# name -> (how to damage the record at `path`, given the bystander's record path; what `state` says)
CORRUPT = 'is corrupt'
DAMAGE = {
    "garbage": (lambda p, other: _write(p, b"\x00\xff{not json"), CORRUPT + ": invalid JSON"),
    "truncated": (lambda p, other: _write(p, open(p, "rb").read()[:40]), CORRUPT + ": invalid JSON"),
    "empty": (lambda p, other: _write(p, b""), CORRUPT + ": invalid JSON"),
    "array": (lambda p, other: _write(p, b"[1, 2]"), CORRUPT + ": record is not a JSON object"),
    "no-version": (lambda p, other: _edit(p, lambda r: r.pop("version")), CORRUPT + ": unknown record version"),
    "version-0": (lambda p, other: _edit(p, lambda r: r.update(version=0)), CORRUPT + ": unknown record version"),
    "newer-version": (lambda p, other: _edit(p, lambda r: r.update(version=VERSION + 97)),
                      f"has version {VERSION + 97}, newer than the version {VERSION}"),
    "status-wrong-type": (lambda p, other: _edit(p, lambda r: r.update(status=5)), CORRUPT + ": field 'status'"),
    "status-unknown": (lambda p, other: _edit(p, lambda r: r.update(status="zombie")), CORRUPT + ": unknown status"),
    "another-containers-record": (lambda p, other: _write(p, open(other, "rb").read()), CORRUPT + ": record names"),
    "symlink-to-bystander": (lambda p, other: _symlink(other, p), CORRUPT + ": " + "{path} is a symbolic link"),
    "symlink-to-host-file": (lambda p, other: _symlink("/etc/hostname", p), CORRUPT + ": {path} is a symbolic link"),
    "directory": (lambda p, other: (os.unlink(p), os.mkdir(p)), CORRUPT + ": {path} is not a regular file"),
    "fifo": (lambda p, other: (os.unlink(p), os.mkfifo(p)), CORRUPT + ": {path} is not a regular file"),
    "huge": (lambda p, other: _truncate(p, 64 << 20), CORRUPT + ": {path} is larger than 4 MiB"),
}


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _edit(path, change):
    record = json.load(open(path))
    change(record)
    _write(path, json.dumps(record).encode())


def _symlink(target, path):
    os.unlink(path)
    os.symlink(target, path)


def _truncate(path, size):
    with open(path, "ab") as f:
        f.truncate(size)  # sparse


def test_damaged_records_affect_only_their_container(env):
    """One bystander and one victim per kind of damage, all in one root."""
    rt = env.rt
    bundle = env.bundle(["sleep", "1000"])
    bystander = env.cid("bystander")
    rt("create", "--bundle", bundle, bystander)
    rt("start", bystander)
    other = record_path(env.root, bystander)
    victims = {}
    for name in DAMAGE:
        cid = env.cid(name)
        rt("create", "--bundle", bundle, cid)
        victims[name] = (cid, rt.state(cid)["pid"])
    for name, (cid, _pid) in victims.items():
        DAMAGE[name][0](record_path(env.root, cid), other)

    for name, (cid, _pid) in victims.items():
        expected = DAMAGE[name][1].format(path=record_path(env.root, cid))
        for args in (["state", cid], ["start", cid], ["kill", cid, "KILL"], ["delete", cid],
                     ["exec", cid, "true"], ["ps", cid]):
            assert_one_line_error(rt(*args, check=False), f'state of container "{cid}" ')
        assert_one_line_error(rt("state", cid, check=False), expected)

    listed = rt("list", "--format", "json", check=False)
    assert listed.returncode == 0 and [c["id"] for c in json.loads(listed.stdout)] == [bystander]
    assert sorted(listed.stderr.splitlines()) == sorted(
        rt("state", cid, check=False).stderr.rstrip("\n") for cid, _pid in victims.values())

    for name, (cid, sandbox) in victims.items():
        assert rt("delete", "--force", cid, check=False).stderr == "", name
        assert files_of(env.root, cid) == [], name
        assert wait_for_exit(sandbox, 10), f"{name}: the sandbox of a damaged container outlived delete --force"
    assert open("/etc/hostname").read()  # a symlink's target is never touched
    assert rt.status(bystander) == "running"
    rt("exec", bystander, "true")
    rt("delete", "--force", bystander)
    assert os.listdir(env.root) == []


def test_version_1_record_is_migrated_once_in_place(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    sf = StateFile.find(env.root, cid)
    sf.lock()
    try:
        record, spec = sf.read_raw(), sf.read_spec()
        sf._write("state", json.dumps(as_version_1(record, spec)).encode())
        os.unlink(sf.path("spec"))  # version 1 kept the spec in the record
    finally:
        sf.unlock()
    assert rt.status(cid) == "created"
    migrated = json.load(open(record_path(env.root, cid)))
    assert migrated["version"] == VERSION and migrated["sandbox"]["pid"] == record["sandbox"]["pid"]
    assert sf.read_spec() == spec
    rt("start", cid)
    assert rt.status(cid) == "running"
    rt("delete", "--force", cid)


def test_damaged_lock_and_strays(env):
    """A lock file that is a symlink, a temp file a killed writer left, a
    record without its lock: state answers, delete --force clears all."""
    rt = env.rt
    bundle = env.bundle(["sleep", "1000"])
    a, b, c = env.cid("a"), env.cid("b"), env.cid("c")
    for cid in (a, b, c):
        rt("create", "--bundle", bundle, cid)
    lock_a = os.path.join(env.root, f"{a}_sandbox:{a}.lock")
    os.unlink(lock_a)
    os.symlink("/etc/hostname", lock_a)
    open(os.path.join(env.root, f".{b}_sandbox:{b}.state.99999.tmp"), "w").write("{half")
    os.unlink(os.path.join(env.root, f"{c}_sandbox:{c}.lock"))
    for cid in (a, b, c):
        assert rt.status(cid) == "created"
    assert_one_line_error(rt("start", a, check=False), "is a symbolic link")
    assert_one_line_error(rt("start", c, check=False), "does not exist")
    assert sorted(row["id"] for row in json.loads(rt("list", "--format", "json").stdout)) == sorted([a, b, c])
    for cid in (a, b, c):
        rt("delete", "--force", cid)
    assert os.listdir(env.root) == []


# -- read-only and full roots ----------------------------------------------------------

def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def umount(path):
    subprocess.run(["umount", path], check=True, capture_output=True, timeout=30)


def snapshot(root):
    out = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        st = os.lstat(path)
        data = open(path, "rb").read() if os.path.isfile(path) else None
        out[name] = (st.st_ino, st.st_mtime_ns, data)
    return out


def test_read_only_root(env):
    """Readers work; every writer fails with one line and changes nothing:
    no file, no process (the running container is not killed)."""
    rt = env.rt
    bundle = env.bundle(["sleep", "1000"])
    running, created = env.cid("running"), env.cid("created")
    rt("create", "--bundle", bundle, running)
    rt("start", running)
    rt("create", "--bundle", bundle, created)
    sandbox = rt.state(running)["pid"]
    mount("--bind", env.root, env.root)
    try:
        mount("-o", "remount,bind,ro", env.root)
        before = snapshot(env.root)
        assert rt.status(running) == "running" and rt.status(created) == "created"
        assert len(json.loads(rt("list", "--format", "json").stdout)) == 2
        assert "sleep 1000" in rt("ps", running).stdout
        read_only = f"root directory {env.root} is read-only"
        for args in (["create", "--bundle", bundle, env.cid("new")], ["start", created],
                     ["kill", running, "KILL"], ["delete", "--force", running], ["delete", created]):
            assert_one_line_error(rt(*args, check=False), read_only)
        assert snapshot(env.root) == before
        assert not wait_for_exit(sandbox, 0.2)  # still running
    finally:
        umount(env.root)
    rt("delete", "--force", running)
    rt("delete", created)


def fill(directory):
    """Fill the file system of `directory`; returns the filler's path."""
    filler = os.path.join(directory, ".filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_root(env):
    """A 64 KiB tmpfs as the root, filled up: create fails with one line and
    leaves nothing; readers, kill and delete keep working; a start that
    cannot record `running` fails and leaves nothing running; once there is
    space again everything works."""
    from tests.support.leaks import leaked_processes
    rt = env.rt
    os.makedirs(env.root)
    mount("-t", "tmpfs", "-o", "size=64k,mode=0711", "tmpfs", env.root)
    try:
        bundle = env.bundle(["sleep", "1000"])
        running, created, new = env.cid("running"), env.cid("created"), env.cid("new")
        rt("create", "--bundle", bundle, running)
        rt("start", running)
        rt("create", "--bundle", bundle, created)
        sandbox = rt.state(running)["pid"]
        filler = fill(env.root)
        try:
            full = f"no space left on device in root directory {env.root}"
            assert_one_line_error(rt("create", "--bundle", bundle, new, check=False), full)
            assert files_of(env.root, new) == []
            assert rt.status(running) == "running"
            assert len(json.loads(rt("list", "--format", "json").stdout)) == 2
            rt("kill", running, "CONT")
            started = rt("start", created, check=False)
            if started.returncode != 0:
                # The workload ran but `running` could not be recorded: the
                # failed start takes the container away, as every failed start does.
                assert_one_line_error(started, full)
                assert_one_line_error(rt("state", created, check=False), "does not exist")
                wait_until(lambda: not leaked_processes(created), 10, "the failed start's processes to exit")
            else:
                assert rt.status(created) == "running"
            rt("kill", running, "KILL")
            assert wait_for_exit(sandbox, 10)
            # `stopped` cannot be recorded, but the answer is still the one engines match.
            assert_one_line_error(rt("kill", running, "KILL", check=False), "container not running")
            assert rt.status(running) == "stopped"
            rt("delete", running)
        finally:
            os.unlink(filler)
        rt("create", "--bundle", bundle, new)
        for cid in (created, new):
            rt("delete", "--force", cid)
        left = os.listdir(env.root)
    finally:
        rt.cleanup()
        umount(env.root)
    assert left == []


# -- pid reuse ------------------------------------------------------------------------------

def point_record_at(root, cid, sandbox, gofer):
    """Rewrite the record under the lock: its sandbox and gofer pids now name
    other processes, with the start times the real ones had (a reused pid)."""
    sf = StateFile.find(root, cid)
    sf.lock()
    try:
        record = sf.read_raw()
        real = {role: dict(record[role]) for role in ("sandbox", "gofer")}
        record["sandbox"]["pid"] = sandbox
        record["gofer"]["pid"] = gofer
        sf.save_locked(record)
    finally:
        sf.unlock()
    return real


def test_reused_pids_read_as_stopped_and_are_never_signalled(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    strangers = [subprocess.Popen(["sleep", "1000"]) for _ in range(2)]
    try:
        real = point_record_at(env.root, cid, strangers[0].pid, strangers[1].pid)
        assert all(start_time(s.pid) != real["sandbox"]["startTime"] for s in strangers)
        # The container's real processes die, as if long ago (their pids were then reused).
        for role in ("sandbox", "gofer"):
            os.kill(real[role]["pid"], signal.SIGKILL)
            assert wait_for_exit(real[role]["pid"], 10)
        state = rt.state(cid)
        assert (state["status"], state["pid"]) == ("stopped", 0)
        assert [(c["status"], c["pid"]) for c in json.loads(rt("list", "--format", "json").stdout)] == [("stopped", 0)]
        for args in (["kill", cid, "KILL"], ["kill", "--all", cid, "KILL"], ["kill", cid, "TERM"]):
            assert_one_line_error(rt(*args, check=False), "container not running")
        assert_one_line_error(rt("exec", cid, "true", check=False), "not running")
        assert_one_line_error(rt("ps", cid, check=False), "not running")
        assert json.loads(rt("wait", cid, timeout=10).stdout)["exitStatus"] == 137
        rt("delete", cid)
        time.sleep(0.2)
        assert [s.poll() for s in strangers] == [None, None], "a stranger with a reused pid was signalled"
        assert os.listdir(env.root) == []
    finally:
        for s in strangers:
            s.kill()
            s.wait()


def test_reused_pid_during_delete_force(env):
    """delete --force of a container whose recorded pids now name strangers
    kills nothing but its own (gone) processes."""
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    stranger = subprocess.Popen(["sleep", "1000"])
    try:
        real = point_record_at(env.root, cid, stranger.pid, stranger.pid)
        for role in ("sandbox", "gofer"):
            os.kill(real[role]["pid"], signal.SIGKILL)
            wait_for_exit(real[role]["pid"], 10)
        rt("delete", "--force", cid)
        time.sleep(0.2)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    wait_until(lambda: os.listdir(env.root) == [], 1, "the root to be empty")
