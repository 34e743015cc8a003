"""Concurrency: many runtime calls at once, as engines make them. One id
created 20 times at once has one winner; 30 lifecycles in parallel all
succeed while `list` stays consistent (half of them share one rootfs, so
their creates make its missing mount destinations at the same time); kill,
delete --force and state race on one container; and nothing waits on
another container's lock or on a container that ignores SIGTERM."""

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from runsc_py.state_file import StateFile
from tests.support.busybox import read_config, write_config
from tests.support.runtime import assert_one_line_error, wait_for_exit

STATUSES = {"created", "running", "stopped"}


def together(n, fn):
    """Run fn(i) for i in range(n) in n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_twenty_creates_of_one_id_have_one_winner(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"])
    results = together(20, lambda _i: rt("create", "--bundle", bundle, cid, check=False))
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1, [r.stderr for r in results]
    for r in losers:
        assert_one_line_error(r)
        assert r.stderr == f'runsc-py: container "{cid}" already exists\n'
    assert rt.status(cid) == "created"
    sandbox = rt.state(cid)["pid"]
    assert len([n for n in os.listdir(env.root) if n.endswith(".state")]) == 1
    rt("delete", cid)
    assert wait_for_exit(sandbox, 10)
    assert os.listdir(env.root) == []


def add_missing_mount(bundle):
    """A mount whose destination the rootfs lacks, six levels deep: the
    creates sharing the rootfs all make it at the same time."""
    config = read_config(bundle)
    config["mounts"].append({"destination": "/made/by/many/creates/at/once", "type": "tmpfs",
                             "source": "tmpfs"})
    write_config(bundle, config)


def check_listing(rt, ids, bundles):
    listed = rt("list", "--format", "json", check=False)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    rows = json.loads(listed.stdout)
    for row in rows:
        assert row["id"] in ids, row
        assert row["status"] in STATUSES, row
        assert isinstance(row["pid"], int) and row["pid"] >= 0, row
        assert row["bundle"] in bundles, row
        if row["status"] == "stopped":
            assert row["pid"] == 0, row
    return len(rows)


def test_thirty_parallel_lifecycles_with_list_sampled(env):
    """30 × create + start + delete on distinct ids: all succeed. Half share
    one bundle (the same rootfs, whose missing mount destination each create
    makes at the same time); `list` sampled meanwhile is always consistent."""
    rt = env.rt
    shared = env.bundle(["sleep", "1000"])
    add_missing_mount(shared)
    own = [env.bundle(["sleep", "1000"]) for _ in range(15)]
    bundles = [shared if i % 2 else own[i // 2] for i in range(30)]
    ids = {env.cid(f"p{i}") for i in range(30)}
    done = threading.Event()
    samples = []

    def sample():
        while not done.is_set():
            samples.append(check_listing(rt, ids, set(bundles)))

    def lifecycle(i):
        cid = env.cid(f"p{i}")
        steps = [("create", "--bundle", bundles[i], cid), ("start", cid), ("delete", "--force", cid)]
        return [rt(*step, check=False, timeout=60) for step in steps]

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = together(30, lifecycle)
    finally:
        done.set()
        sampler.join(timeout=60)
    failed = [(r.args[-1], r.args[-2], r.stderr) for rs in results for r in rs if r.returncode != 0]
    assert failed == []
    assert len(samples) >= 3 and max(samples) > 0  # list really ran while containers existed
    assert check_listing(rt, ids, set(bundles)) == 0
    assert os.listdir(env.root) == []


def test_kill_delete_and_state_race_on_one_container(env):
    rt = env.rt
    bundle = env.bundle(["sleep", "1000"])
    for round_ in range(3):
        cid = env.cid(f"r{round_}")
        rt("create", "--bundle", bundle, cid)
        rt("start", cid)
        calls = ([("kill", cid, sig) for sig in ("TERM", "KILL", "0", "CONT")] * 2
                 + [("delete", "--force", cid)] * 3 + [("state", cid)] * 6 + [("list", "-q")] * 2)
        results = together(len(calls), lambda i: rt(*calls[i], check=False))
        for call, r in zip(calls, results):
            assert "Traceback" not in r.stderr
            if call[0] == "delete":
                assert r.returncode == 0, r.stderr
            elif r.returncode != 0:
                assert_one_line_error(r)
                assert ("does not exist" in r.stderr or "container not running" in r.stderr), (call, r.stderr)
            elif call[0] == "state":
                assert json.loads(r.stdout)["status"] in STATUSES
        assert os.listdir(env.root) == []
        assert rt("state", cid, check=False).stderr == f'runsc-py: container "{cid}" does not exist\n'


def timed(rt, *args, limit=1.0):
    started = time.monotonic()
    result = rt(*args, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, (args, result.stderr)
    assert elapsed < limit, f"runsc-py {' '.join(args)} took {elapsed:.2f}s"
    return result


IGNORES_TERM = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]


def test_nothing_waits_on_a_container_that_ignores_sigterm(env):
    """`kill` returns at once (it does not wait for the exit); while one
    container's lock is held as by a delete waiting for its sandbox, and
    while a delete runs its slow poststop hook, every other call on every
    container answers within 1 s: no lock is held across containers and
    readers take none."""
    rt = env.rt
    slow, other = env.cid("slow"), env.cid("other")
    bundle = env.bundle(IGNORES_TERM)
    config = read_config(bundle)
    config["hooks"] = {"poststop": [{"path": "/bin/sleep", "args": ["sleep", "3"]}]}
    write_config(bundle, config)
    rt("create", "--bundle", bundle, slow)
    rt("start", slow)
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), other)
    rt("start", other)

    timed(rt, "kill", slow, "TERM")
    time.sleep(0.3)
    assert rt.status(slow) == "running"  # it ignored the signal; kill did not wait for it

    held = StateFile.find(env.root, slow)
    held.lock()  # what a delete holds while it waits for the sandbox to die
    try:
        deleting = rt.popen("delete", "--force", slow)
        time.sleep(0.3)
        assert deleting.poll() is None  # it waits for the lock ...
        assert timed(rt, "state", slow).stdout  # ... readers do not
        assert {c["id"] for c in json.loads(timed(rt, "list", "--format", "json").stdout)} == {slow, other}
        timed(rt, "state", other)
        timed(rt, "kill", other, "0")
        timed(rt, "exec", other, "true", limit=2.0)  # exec forks into the container: more work
    finally:
        held.unlock()
    assert rt.finish(deleting, timeout=30) == 0  # its poststop hook sleeps 3 s after the lock is gone

    rt("create", "--bundle", bundle, slow)
    rt("start", slow)
    deleting = rt.popen("delete", "--force", slow)
    time.sleep(0.5)  # inside the poststop hook now
    timed(rt, "state", other)
    timed(rt, "list")
    timed(rt, "delete", "--force", other, limit=2.0)  # it kills and waits for its own sandbox
    assert deleting.poll() is None, "the poststop hook should still be running"
    assert rt.finish(deleting, timeout=30) == 0
    assert os.listdir(env.root) == []


def _make_targets(root, go_r, paths):
    """Child: make every path inside `root` as a mount target; exit 0 if all worked."""
    from sandbox.rootfs import make_target
    os.read(go_r, 1)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    for path in paths:
        os.close(make_target(root_fd, path, is_dir=not path.endswith(".file")))
    return 0


def test_mount_targets_made_by_concurrent_creates(env):
    """Creates sharing a rootfs make missing mount destinations in it at
    the same time: each must take the other's directory for its own (the
    sandboxes' make_target, driven directly by 8 processes: the race is
    too narrow to hit reliably through whole creates)."""
    root = os.path.join(env.tmp, "rootfs")
    os.makedirs(root)
    paths = [f"/d{i}/e/f/g" + (".file" if i % 3 == 0 else "") for i in range(200)]
    go_r, go_w = os.pipe()
    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _make_targets(root, go_r, paths)
            finally:
                os._exit(code)
        children.append(pid)
    os.write(go_w, b"g" * 8)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    os.close(go_r)
    os.close(go_w)
    assert codes == [0] * 8
    assert len(os.listdir(root)) == 200
