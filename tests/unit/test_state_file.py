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
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)  # lives until its stdin closes
    sf = save(root, "z", record("z", status="running", pid=child.pid))
    assert Container(sf, sf.load()).status == st.RUNNING
    # Let it exit but do not reap it: a zombie is dead.
    child.stdin.close()
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


# -- damaged roots: FIFOs, directories and symlinks where files belong ----------

def _with_alarm(seconds, fn, *args):
    """Run fn; a hang (a read blocking on a FIFO) fails the test instead of the suite."""
    def expired(_sig, _frame):
        raise AssertionError(f"hung for {seconds}s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        return fn(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_state_that_is_not_a_file_is_corrupt_and_destroyable(tmp_path, kind):
    root = str(tmp_path / "root")
    save(root, "good", record("good"))
    sf = save(root, "f", record("f"))
    os.unlink(sf.path("state"))
    os.mkfifo(sf.path("state")) if kind == "fifo" else os.mkdir(sf.path("state"))
    with pytest.raises(Corrupt, match="not a regular file"):
        _with_alarm(5, sf.load)  # a plain open of a FIFO blocks until a writer comes
    listed = dict((cid, rec) for cid, _sf, rec in _with_alarm(5, list_records, root))
    assert isinstance(listed["f"], Corrupt) and listed["good"]["id"] == "good"
    found = StateFile.find(root, "f")
    found.lock_for_destroy()
    found.destroy()
    assert sorted(os.listdir(root)) == ["good_sandbox:good.lock", "good_sandbox:good.state"]


@pytest.mark.parametrize("kind", ["symlink", "dir", "fifo", "missing"])
def test_damaged_lock_file_can_still_be_destroyed(tmp_path, kind):
    """`delete --force` must always be able to clear a container; the
    symlink's target is never touched."""
    root = str(tmp_path / "root")
    victim = tmp_path / "victim"
    victim.write_text("host file")
    sf = save(root, "l", record("l"))
    os.unlink(sf.path("lock"))
    if kind == "symlink":
        os.symlink(victim, sf.path("lock"))
    elif kind == "dir":
        os.mkdir(sf.path("lock"))
    elif kind == "fifo":
        os.mkfifo(sf.path("lock"))
    if kind != "missing":
        with pytest.raises(Corrupt):
            _with_alarm(5, StateFile(root, "l").lock)
    else:
        with pytest.raises(NotExist):
            StateFile(root, "l").lock()
    found = StateFile.find(root, "l")
    _with_alarm(5, found.lock_for_destroy)
    assert found.locked
    assert found.destroy() is True
    assert os.listdir(root) == []
    assert victim.read_text() == "host file"


def test_fifo_spec_and_exit_files_do_not_block(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "s", record("s"))
    os.mkfifo(sf.path("spec"))
    os.mkfifo(sf.path("exit"))
    with pytest.raises(OSError, match="not a regular file"):
        _with_alarm(5, sf.read_spec)
    assert _with_alarm(5, sf.read_exit) is None


def test_huge_record_is_corrupt_not_read_whole(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "h", record("h"))
    with open(sf.path("state"), "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk
    with pytest.raises(Corrupt, match="is larger than 4 MiB"):
        sf.load()


# -- the lock is flock: runsc-py and filelock's UnixFileLock exclude each other ------

def _hold_with_statefile(root, ready_w, release_r):
    sf = StateFile(root, "x")
    sf.lock()
    os.write(ready_w, b"r")
    os.read(release_r, 1)
    sf.unlock()
    return 0


def _hold_with_filelock(path, ready_w, release_r):
    import filelock
    lock = filelock.UnixFileLock(path)
    lock.acquire(timeout=5)
    os.write(ready_w, b"r")
    os.read(release_r, 1)
    lock.release()
    return 0


def test_runsc_lock_excludes_filelock(tmp_path):
    import filelock
    root = str(tmp_path / "root")
    sf = save(root, "x", record("x"))
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    holder = forked(_hold_with_statefile, root, ready_w, release_r)
    os.read(ready_r, 1)
    other = filelock.UnixFileLock(sf.path("lock"))
    with pytest.raises(filelock.Timeout):
        other.acquire(timeout=0.3)
    os.write(release_w, b"g")
    assert exit_code(holder) == 0
    other.acquire(timeout=5)  # free at once after the runtime's unlock
    other.release()
    assert os.path.exists(sf.path("lock"))  # filelock leaves the file in place
    for fd in (ready_r, ready_w, release_r, release_w):
        os.close(fd)


def exit_code_of_cli_create(tmp_path, root, cid):
    """`runsc-py create` of a valid bundle: must fail with "already exists"."""
    from specs.default import default_spec
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(default_spec()))
    new = subprocess.run([sys.executable, "-m", "runsc_py", "--root", root, "create", "--bundle",
                          str(bundle), cid], capture_output=True, text=True, timeout=30)
    assert new.stderr == f'runsc-py: container "{cid}" already exists\n'
    return new.returncode


def test_filelock_excludes_runsc_lock(tmp_path):
    root = str(tmp_path / "root")
    sf = save(root, "x", record("x"))
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    holder = forked(_hold_with_filelock, sf.path("lock"), ready_w, release_r)
    os.read(ready_r, 1)
    mine = StateFile(root, "x")
    assert not mine.try_lock()
    with pytest.raises(Failure, match="timed out"):
        mine.lock(timeout=0.3)
    with pytest.raises(AlreadyExists):
        StateFile(root, "x").lock_for_new()
    os.write(release_w, b"g")
    assert exit_code(holder) == 0
    mine.lock(timeout=5)
    mine.unlock()
    for fd in (ready_r, ready_w, release_r, release_w):
        os.close(fd)


def test_filelock_holding_a_new_id_makes_create_fail(tmp_path):
    """A lock file without a record, held through filelock: for runsc-py a
    create of that id is in progress."""
    root = str(tmp_path / "root")
    os.makedirs(root)
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    holder = forked(_hold_with_filelock, StateFile(root, "y").path("lock"), ready_w, release_r)
    os.read(ready_r, 1)
    try:
        assert exit_code_of_cli_create(tmp_path, root, "y") == 1
    finally:
        os.write(release_w, b"g")
        assert exit_code(holder) == 0
    for fd in (ready_r, ready_w, release_r, release_w):
        os.close(fd)


# -- through the CLI: read-only root, corrupt record --------------------------------

def cli(root, *args):
    result = subprocess.run([sys.executable, "-m", "runsc_py", "--root", root, *args],
                            capture_output=True, text=True, timeout=30)
    assert "Traceback" not in result.stderr
    return result


def snapshot(root):
    out = {}
    for name in sorted(os.listdir(root)):
        st_ = os.lstat(os.path.join(root, name))
        with open(os.path.join(root, name), "rb") as f:
            out[name] = (f.read(), st_.st_mtime_ns, st_.st_ino)
    return out


def dead_pid():
    child = subprocess.Popen(["true"])
    start = start_time(child.pid)
    child.wait()
    return child.pid, start


@pytest.fixture
def read_only_root(tmp_path):
    """A root holding a live and a stale container, then bind-mounted read-only."""
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    root = str(tmp_path / "root")
    sleeper = subprocess.Popen(["sleep", "1000"])
    save(root, "live", record("live", status="running", pid=sleeper.pid))
    pid, start = dead_pid()
    stale = record("stale", status="running", pid=pid)
    stale["sandbox"]["startTime"] = start
    save(root, "stale", stale)
    subprocess.run(["mount", "--bind", root, root], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", root], check=True)
        yield root, sleeper
    finally:
        subprocess.run(["umount", root], check=True)
        sleeper.kill()
        sleeper.wait()


def test_read_only_root_readers_work_writers_fail_cleanly(read_only_root, tmp_path):
    root, sleeper = read_only_root
    before = snapshot(root)
    assert json.loads(cli(root, "state", "live").stdout)["status"] == "running"
    assert json.loads(cli(root, "state", "stale").stdout)["status"] == "stopped"  # not persisted: fine
    listed = cli(root, "list", "--format", "json")
    assert listed.returncode == 0 and listed.stderr == ""
    assert sorted(c["id"] for c in json.loads(listed.stdout)) == ["live", "stale"]
    message = f"runsc-py: root directory {root} is read-only\n"
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    from specs.default import default_spec
    (bundle / "config.json").write_text(json.dumps(default_spec()))
    for args in (["create", "--bundle", str(bundle), "new"], ["delete", "--force", "live"],
                 ["delete", "stale"], ["kill", "live", "KILL"], ["start", "live"]):
        result = cli(root, *args)
        assert (result.returncode, result.stderr) == (1, message), args
    with pytest.raises(Failure, match="is read-only"):
        StateFile(root, "new2").lock_for_new()
    assert sleeper.poll() is None  # nothing was signalled
    assert snapshot(root) == before  # nothing changed


def test_corrupt_record_through_the_cli(tmp_path):
    root = str(tmp_path / "root")
    pid, start = dead_pid()
    good = record("good", status="running", pid=pid)
    good["sandbox"]["startTime"] = start
    save(root, "good", good)
    bad = save(root, "bad", record("bad"))
    with open(bad.path("state"), "w") as f:
        f.write('{"version": 2, "id": "bad", "sta')  # truncated
    prefix = 'runsc-py: state of container "bad" is corrupt: invalid JSON: '
    for args in (["state", "bad"], ["delete", "bad"], ["kill", "bad"], ["start", "bad"]):
        result = cli(root, *args)
        assert result.returncode == 1 and result.stderr.startswith(prefix), args
        assert result.stderr.count("\n") == 1
    listed = cli(root, "list", "-q")
    assert (listed.returncode, listed.stdout) == (0, "good\n")
    assert listed.stderr.startswith(prefix) and listed.stderr.count("\n") == 1
    assert cli(root, "delete", "--force", "bad").returncode == 0
    assert sorted(os.listdir(root)) == ["good_sandbox:good.lock", "good_sandbox:good.state"]
    assert json.loads(cli(root, "state", "good").stdout)["status"] == "stopped"
