"""StateFile with real files, real flock and real processes."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from runsc_py import status as st
from runsc_py.container import Container
from runsc_py.errors import AlreadyExists, Corrupt, Failure, NotExist
from runsc_py.linux.proc import start_time
from runsc_py.state_file import VERSION, StateFile, list_records, validate_id


def record(cid, status="created", pid=None, **extra):
    pid = pid or os.getpid()
    rec = {"id": cid, "sandboxId": cid, "bundle": "/b", "status": status, "annotations": {},
           "sandbox": {"pid": pid, "startTime": start_time(pid), "controlSocket": "",
                       "originalOomScoreAdj": None},
           "gofer": None, "exitStatus": None}
    rec.update(extra)
    return rec


def save(root, cid, rec):
    sf = StateFile(str(root), cid)
    sf.lock_for_new()
    sf.save_locked(rec)
    sf.unlock()
    return sf


def forked(fn, *args):
    """Run fn(*args) in a forked child; its exit code is fn's return value."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn(*args)
        finally:
            os._exit(code)
    return pid


def exit_code(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# -- ids ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a b", "a:b", "x\0", "é", "a" * 1025])
def test_invalid_ids_rejected_before_any_path(bad, tmp_path):
    with pytest.raises(Failure):
        validate_id(bad)
    with pytest.raises(Failure):
        StateFile(str(tmp_path), bad)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("good", ["a", "A-1", "x_y.z+w", "a" * 1024, "123"])
def test_valid_ids(good):
    validate_id(good)


# -- races -------------------------------------------------------------------

def _contend(root, go_fd, result_dir):
    os.read(go_fd, 1)
    sf = StateFile(root, "same")
    try:
        sf.lock_for_new()
    except AlreadyExists:
        return 1
    sf.save_locked(record("same"))
    sf.unlock()
    return 0


@pytest.mark.parametrize("round_", range(20))
def test_lock_for_new_exactly_one_winner(tmp_path, round_):
    root = str(tmp_path / "root")
    r, w = os.pipe()
    pids = [forked(_contend, root, r, None) for _ in range(50)]
    os.write(w, b"x" * 50)  # release them together
    codes = [exit_code(p) for p in pids]
    os.close(r)
    os.close(w)
    assert codes.count(0) == 1 and codes.count(1) == 49, codes


def _writer(root, n):
    sf = StateFile(root, "w")
    sf.lock()
    for i in range(n):
        rec = record("w", counter=i, padding="x" * random.randint(0, 5000))
        sf.save_locked(rec)
    sf.unlock()
    return 0


def _reader(root, stop_path):
    sf = StateFile(root, "w")
    loads = 0
    while not os.path.exists(stop_path):
        rec = sf.load()  # raises (exit 99) on a torn read
        assert rec["id"] == "w"
        loads += 1
    return 0 if loads else 2


def test_readers_never_see_partial_records(tmp_path):
    root = str(tmp_path / "root")
    save(root, "w", record("w", counter=-1))
    stop = str(tmp_path / "stop")
    readers = [forked(_reader, root, stop) for _ in range(4)]
    writer = forked(_writer, root, 2000)
    assert exit_code(writer) == 0
    open(stop, "w").close()
    assert [exit_code(p) for p in readers] == [0, 0, 0, 0]


def _writer_forever(root, ready_w):
    sf = StateFile(root, "k")
    sf.lock()
    os.write(ready_w, b"r")
    i = 0
    while True:
        i += 1
        sf.save_locked(record("k", counter=i, padding="y" * (i % 3000)))


def test_writer_killed_at_random_leaves_old_or_new(tmp_path):
    root = str(tmp_path / "root")
    save(root, "k", record("k", counter=0))
    for trial in range(200):
        r, w = os.pipe()
        pid = forked(_writer_forever, root, w)
        os.read(r, 1)
        time.sleep(random.uniform(0, 0.004))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        os.close(w)
        sf = StateFile(root, "k")
        assert sf.load()["id"] == "k"
        assert sf.try_lock(), f"lock still held after the writer died (trial {trial})"
        sf.unlock()


def _hold_lock(root, ready_w):
    sf = StateFile(root, "h")
    sf.lock()
    os.write(ready_w, b"r")
    time.sleep(1000)
    return 0


def test_lock_of_killed_holder_is_free_at_once(tmp_path):
    root = str(tmp_path / "root")
    save(root, "h", record("h"))
    r, w = os.pipe()
    pid = forked(_hold_lock, root, w)
    os.read(r, 1)
    assert not StateFile(root, "h").try_lock()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    started = time.monotonic()
    sf = StateFile(root, "h")
    sf.lock(timeout=5)
    assert time.monotonic() - started < 0.5
    sf.unlock()


def _wait_then_lock(root, go_r):
    sf = StateFile(root, "d")
    os.read(go_r, 1)
    try:
        sf.lock(timeout=10)
    except NotExist:
        return 3
    return 0


def test_destroy_while_waiting_gives_not_exist(tmp_path):
    root = str(tmp_path / "root")
    save(root, "d", record("d"))
    r, w = os.pipe()
    pid = forked(_wait_then_lock, root, r)  # forked first: it must not share our lock fd
    holder = StateFile(root, "d")
    holder.lock()
    os.write(w, b"g")
    time.sleep(0.2)  # let the waiter block in flock on the old lock file
    holder.destroy()
    assert exit_code(pid) == 3
    assert os.listdir(root) == []


def _migrate(root, log_path, go_r):
    os.read(go_r, 1)
    import runsc_py.state_file as sfmod
    original = sfmod.migrate

    def counted(sf, rec):
        with open(log_path, "a") as f:
            f.write("migrated\n")
        return original(sf, rec)

    sfmod.migrate = counted
    rec = StateFile(root, "m").load()
    return 0 if rec["version"] == VERSION and rec["sandbox"]["pid"] == 4242 else 1


def test_concurrent_migrations_migrate_once(tmp_path):
    root = str(tmp_path / "root")
    log = str(tmp_path / "log")
    r, w = os.pipe()
    pids = [forked(_migrate, root, log, r) for _ in range(2)]  # before we lock: no shared lock fd
    sf = StateFile(root, "m")
    sf.lock_for_new()
    old = {"version": 1, "id": "m", "sandboxId": "m", "bundle": "/b", "status": "stopped",
           "pid": 4242, "startTime": 1, "spec": {"ociVersion": "1.0.0"}}
    sf._write("state", json.dumps(old).encode())  # what version 1 wrote
    os.write(w, b"gg")
    time.sleep(0.2)  # both are blocked on our lock now
    sf.unlock()
    assert [exit_code(p) for p in pids] == [0, 0]
    assert open(log).read().count("migrated") == 1
    assert StateFile(root, "m").read_raw()["version"] == VERSION
    assert StateFile(root, "m").read_spec() == {"ociVersion": "1.0.0"}


def test_newer_version_is_a_clear_error(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "n", record("n"))
    data = json.loads(open(sf.path("state")).read())
    data["version"] = VERSION + 1
    open(sf.path("state"), "w").write(json.dumps(data))
    with pytest.raises(Failure) as e:
        sf.load()
    assert f"version {VERSION + 1}" in str(e.value) and f"version {VERSION}" in str(e.value)


# -- liveness ------------------------------------------------------------------

def test_pid_reuse_reads_as_stopped(tmp_path):
    root = str(tmp_path / "root")
    rec = record("p", status="running")
    rec["sandbox"]["startTime"] -= 1  # same pid, other start time: another process
    sf = save(root, "p", rec)
    assert Container(sf, sf.load()).status == st.STOPPED


def test_live_and_zombie_sandbox(tmp_path):
    root = str(tmp_path / "root")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    sf = save(root, "z", record("z", status="running", pid=child.pid))
    assert Container(sf, sf.load()).status == st.RUNNING or child.poll() is not None
    # Let it exit but do not reap it: a zombie is dead.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert Container(sf, sf.load()).status == st.STOPPED
    child.wait()


# -- hostile files ---------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"null", b'{"version": 2}', b"\xff\xfe",
                                     b'{"version": 2, "id": "c", "sandboxId": "c", "bundle": "/b", "status": "weird"}'])
def test_corrupt_record_is_reported_for_that_container_only(tmp_path, content):
    root = str(tmp_path / "root")
    save(root, "good", record("good"))
    bad = save(root, "c", record("c"))
    with open(bad.path("state"), "wb") as f:
        f.write(content)
    with pytest.raises(Corrupt) as e:
        bad.load()
    assert 'state of container "c" is corrupt' in str(e.value)
    listed = {cid: rec for cid, _sf, rec in list_records(root)}
    assert isinstance(listed["c"], Corrupt)
    assert listed["good"]["id"] == "good"


def test_symlinked_record_is_refused(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "s", record("s"))
    target = tmp_path / "elsewhere"
    target.write_text(open(sf.path("state")).read())
    os.unlink(sf.path("state"))
    os.symlink(target, sf.path("state"))
    with pytest.raises(Corrupt, match="symbolic link"):
        sf.load()


def test_list_skips_vanishing_and_foreign_files(tmp_path):
    root = str(tmp_path / "root")
    save(root, "a", record("a"))
    open(os.path.join(root, "unrelated.state"), "w").close()
    open(os.path.join(root, ".a_sandbox:a.state.123.tmp"), "w").close()
    assert [cid for cid, _sf, _r in list_records(root)] == ["a"]
    assert list_records(str(tmp_path / "missing")) == []


def test_save_without_lock_is_a_programming_error(tmp_path):
    sf = StateFile(str(tmp_path), "x")
    with pytest.raises(AssertionError):
        sf.save_locked(record("x"))


def test_destroy_is_idempotent_and_reports_who_removed(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "i", record("i"))
    sf.lock()
    assert sf.destroy() is True
    assert StateFile(root, "i").destroy() is False
    assert os.listdir(root) == []


def test_find_is_by_exact_id(tmp_path):
    root = str(tmp_path / "root")
    save(root, "abc", record("abc"))
    with pytest.raises(NotExist):
        StateFile.find(root, "ab")
    assert StateFile.find(root, "abc").cid == "abc"


# -- status machine --------------------------------------------------------------

def test_status_table():
    assert st.can_start(st.CREATED) and not st.can_start(st.RUNNING)
    assert all(st.can_kill(s) for s in (st.CREATED, st.RUNNING, st.PAUSED)) and not st.can_kill(st.STOPPED)
    assert st.can_delete(st.STOPPED) and st.can_delete(st.CREATED) and not st.can_delete(st.RUNNING)
    assert st.can_pause(st.RUNNING) and st.can_resume(st.PAUSED)
    assert st.can_exec(st.RUNNING) and not st.can_exec(st.STOPPED)
    with pytest.raises(st.InvalidTransition):
        st.check_transition(st.STOPPED, st.RUNNING)
    st.check_transition(st.RUNNING, st.PAUSED)
