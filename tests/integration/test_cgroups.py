"""cgroups on the real kernel: limits read back from the cgroup files and
enforced (OOM kill, fork loop stopped, CPU throttled), update, pause and
resume, events, kill and delete of paused containers, cgroup removal (only
what create made), and refusals before anything exists.

This project's CI host is hybrid: v1 hierarchies for most controllers and a
cgroup2 hierarchy at /sys/fs/cgroup/unified holding hugetlb only. Where a
test needs a controller in a version the host does not offer, it is
skipped with the reason, never faked. Cgroup directories are found from the
kernel's own view (/proc/PID/cgroup and mountinfo), not from the runtime's
state."""

import json
import os
import select
import signal
import time

import pytest

from tests.support.busybox import default_config
from tests.support.runtime import wait_for_exit, wait_until

DENY_ALL = [{"allow": False, "access": "rwm"}]
V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
                  "net_cls", "net_prio", "perf_event", "rdma", "misc"}


# -- the kernel's view of cgroups --------------------------------------------------------------------

def hierarchies():
    """[(mountpoint, version, controllers)] of the cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _src, options = right.split()[:3]
            mountpoint = left.split()[4]
            if fstype == "cgroup":
                out.append((mountpoint, 1, {o for o in options.split(",") if o in V1_CONTROLLERS}))
            elif fstype == "cgroup2":
                with open(os.path.join(mountpoint, "cgroup.controllers")) as c:
                    out.append((mountpoint, 2, set(c.read().split())))
    return out


def holder(controller):
    """(mountpoint, version) of the hierarchy holding `controller`; "" is cgroup2 itself."""
    for mountpoint, version, controllers in hierarchies():
        if (controller == "" and version == 2) or controller in controllers:
            return mountpoint, version
    return None


def cgroup_dir(pid, controller):
    """The directory of `pid`'s cgroup in the hierarchy holding `controller`."""
    found = holder(controller)
    assert found, f"no hierarchy holds {controller!r}"
    mountpoint, version = found
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            names = set(controllers.split(",")) if controllers else set()
            if (version == 2 and not controllers) or (version == 1 and controller in names):
                return mountpoint + path.rstrip("/")
    raise AssertionError(f"process {pid} is in no {controller} cgroup")


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def key_values(text):
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def all_dirs_named(name):
    """Every cgroup directory called `name`, in every hierarchy (shallow walk)."""
    found = []
    for mountpoint, _version, _ in hierarchies():
        for dirpath, dirnames, _files in os.walk(mountpoint):
            found += [os.path.join(dirpath, d) for d in dirnames if d == name]
            if dirpath.count("/") - mountpoint.count("/") >= 3:
                dirnames[:] = []
    return found


# -- helpers ----------------------------------------------------------------------------------------

def bundle(env, args, resources=None, cgroups_path=None):
    config = default_config(args)
    config["linux"]["resources"] = dict({"devices": DENY_ALL}, **(resources or {}))
    if cgroups_path is not None:
        config["linux"]["cgroupsPath"] = cgroups_path
    return env.bundle(config=config)


def rootfs(path, *parts):
    return os.path.join(path, "rootfs", *parts)


def sandbox_pid(env, cid):
    return env.rt.state(cid)["pid"]


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def proc_state(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()[0].decode()


def stats(env, cid):
    event = json.loads(env.rt("events", "--stats", cid).stdout)
    assert event["type"] == "stats" and event["id"] == cid
    return event["data"]


def counter(path):
    try:
        return int(open(rootfs(path, "tmp", "n")).read() or 0)
    except (FileNotFoundError, ValueError):
        return 0


COUNTING = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done"]


def read_line(stream, timeout):
    """One line of a child's stdout, bounded."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return stream.readline()


# -- limits --------------------------------------------------------------------------------------------

def test_memory_limit_read_back_and_oom_kill_reported(env):
    rt, cid = env.rt, env.cid()
    limit = 64 << 20
    path = bundle(env, ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.02; done; "
                                    "dd if=/dev/zero of=/dev/null bs=256M count=1"],
                  {"memory": {"limit": limit, "swap": limit}})
    rt("create", "--bundle", path, cid)
    memory = cgroup_dir(sandbox_pid(env, cid), "memory")
    assert memory.endswith(f"/runsc-py/{cid}")
    if holder("memory")[1] == 1:
        assert int(read(memory, "memory.limit_in_bytes")) == limit
        assert int(read(memory, "memory.memsw.limit_in_bytes")) == limit
    else:
        assert int(read(memory, "memory.max")) == limit
    import subprocess
    events = rt.popen("events", "--interval", "100ms", cid, stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(read_line(events.stdout, 10))["type"] == "stats"  # watching before the OOM
        rt("start", cid)
        open(rootfs(path, "tmp", "go"), "w").close()
        out = json.loads(rt("wait", cid, timeout=30).stdout)
        assert out["exitStatus"] == 137, "allocating past the limit must be OOM-killed"
        rest, _ = events.communicate(timeout=20)  # events ends when the container stops
    finally:
        if events.poll() is None:
            events.kill()
        rt.finish(events)
    lines = [json.loads(line) for line in rest.splitlines()]
    assert {"type": "oom", "id": cid} in lines
    assert all(line["type"] in ("stats", "oom") for line in lines)
    rt("delete", cid)


def test_pids_limit_stops_a_fork_loop(env):
    rt, cid = env.rt, env.cid()
    limit = 12
    path = bundle(env, ["sh", "-c", "i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo $i > /tmp/n; "
                                    "sleep 100 & done; echo all > /tmp/all; sleep 1000"],
                  {"pids": {"limit": limit}})
    rt("create", "--bundle", path, cid)
    pids = cgroup_dir(sandbox_pid(env, cid), "pids")
    assert read(pids, "pids.max") == str(limit)
    rt("start", cid)
    # The shell gives up at the first fork the limit refuses.
    out = json.loads(rt("wait", cid, timeout=30).stdout)
    assert out["exitStatus"] != 0
    assert not os.path.exists(rootfs(path, "tmp", "all"))
    assert 1 < counter(path) <= limit
    assert int(key_values(read(pids, "pids.events"))["max"]) >= 1
    rt("delete", cid)


def test_cpu_quota_and_shares_visible_and_throttling_counted(env):
    rt, cid = env.rt, env.cid()
    path = bundle(env, ["sh", "-c", "while :; do :; done"],
                  {"cpu": {"quota": 10000, "period": 100000, "shares": 512}})
    rt("create", "--bundle", path, cid)
    cpu = cgroup_dir(sandbox_pid(env, cid), "cpu")
    if holder("cpu")[1] == 1:
        assert read(cpu, "cpu.cfs_quota_us") == "10000" and read(cpu, "cpu.cfs_period_us") == "100000"
        assert read(cpu, "cpu.shares") == "512"
    else:
        assert read(cpu, "cpu.max") == "10000 100000" and read(cpu, "cpu.weight") == "20"
    rt("start", cid)
    wait_until(lambda: stats(env, cid)["cpu"]["throttling"].get("throttledPeriods", 0) > 0, 10,
               "a busy loop at 10% of a CPU to be throttled")
    usage = stats(env, cid)["cpu"]["usage"]
    assert usage["total"] > 0 and "kernel" in usage and "user" in usage
    rt("delete", "--force", cid)


def test_stats_have_runc_shape(env):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], {"memory": {"limit": 128 << 20},
                                                                      "pids": {"limit": 100}}), cid)
    data = stats(env, cid)
    assert set(data) >= {"cpu", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}
    assert set(data["cpu"]) == {"usage", "throttling"}
    assert data["memory"]["usage"]["limit"] == 128 << 20
    assert {"limit", "failcnt"} <= set(data["memory"]["usage"]) and "raw" in data["memory"]
    assert data["pids"]["limit"] == 100 and data["pids"]["current"] >= 2  # the sandbox and the workload
    rt("delete", "--force", cid)
    stopped = rt("events", "--stats", cid, check=False)
    assert stopped.returncode == 1 and "does not exist" in stopped.stderr


# -- update ---------------------------------------------------------------------------------------------

def saved_resources(env, cid):
    with open(os.path.join(env.root, f"{cid}_sandbox:{cid}.spec")) as f:
        return json.load(f)["linux"]["resources"]


def test_update_changes_files_and_saved_resources(env, tmp_path):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], {"memory": {"limit": 64 << 20},
                                                                      "cpu": {"period": 100000}}), cid)
    pid = sandbox_pid(env, cid)
    memory, pids, cpu = (cgroup_dir(pid, c) for c in ("memory", "pids", "cpu"))
    rt("update", "--memory", "128M", "--pids-limit", "20", "--cpu-quota", "30000", cid)
    v1 = holder("memory")[1] == 1
    assert int(read(memory, "memory.limit_in_bytes" if v1 else "memory.max")) == 128 << 20
    assert read(pids, "pids.max") == "20"
    assert read(cpu, "cpu.cfs_quota_us") == "30000" if v1 else read(cpu, "cpu.max") == "30000 100000"
    saved = saved_resources(env, cid)
    assert saved["memory"] == {"limit": 128 << 20} and saved["pids"] == {"limit": 20}
    assert saved["cpu"] == {"period": 100000, "quota": 30000}  # merged with what create had
    assert saved["devices"] == DENY_ALL

    doc = tmp_path / "resources.json"
    doc.write_text(json.dumps({"memory": {"limit": 96 << 20}, "pids": {"limit": 30}}))
    rt("update", "--resources", str(doc), "--pids-limit", "99", cid)  # the flags are ignored with -r
    assert int(read(memory, "memory.limit_in_bytes" if v1 else "memory.max")) == 96 << 20
    assert read(pids, "pids.max") == "30"
    rt("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": -1}}))
    assert read(pids, "pids.max") == "max" and saved_resources(env, cid)["pids"] == {"limit": -1}
    assert stats(env, cid)["memory"]["usage"]["limit"] == 96 << 20

    refusals = [
        (["--memory", "lots"], None, "--memory: invalid size"),
        (["-r", "-"], {"memory": {"limit": "1G"}}, "update: linux.resources.memory.limit: must be an integer"),
        (["--memory-swap", "10M"], None, "memory.swap: memory+swap 10485760 is less than the memory limit"),
        (["--l3-cache-schema", "L3:0=f"], None, "Intel RDT"),
        (["-r", "-"], {"devices": [{"allow": True, "type": "c", "access": "rw"},
                                   {"allow": False, "type": "c", "major": 4, "minor": 1}]},
         "linux.resources.devices[1]: deny c 4:1 rwm would be ignored"),
    ]
    for args, payload, words in refusals:
        bad = rt("update", *args, cid, check=False, input=None if payload is None else json.dumps(payload))
        assert bad.returncode == 1 and words in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert saved_resources(env, cid)["memory"] == {"limit": 96 << 20}  # a refused update saves nothing
    rt("kill", cid, "KILL")
    assert wait_for_exit(pid, 10)
    gone = rt("update", "--memory", "1G", cid, check=False)
    assert gone.returncode == 1 and "not running" in gone.stderr
    rt("delete", cid)


# -- pause and resume ------------------------------------------------------------------------------------

def test_pause_freezes_and_resume_thaws(env):
    rt, cid = env.rt, env.cid()
    path = bundle(env, COUNTING)
    rt("create", "--bundle", path, cid)
    refused = rt("pause", cid, check=False)
    assert refused.returncode == 1 and "not running" in refused.stderr  # created, not running
    rt("start", cid)
    wait_until(lambda: counter(path) > 2, 10, "the workload to count")
    notpaused = rt("resume", cid, check=False)
    assert notpaused.returncode == 1 and "not paused" in notpaused.stderr

    rt("pause", cid)
    assert rt.status(cid) == "paused"
    workload = children(sandbox_pid(env, cid))[0]
    if holder("freezer"):
        assert read(cgroup_dir(workload, "freezer"), "freezer.state") == "FROZEN"
        assert proc_state(workload) == "D"  # the v1 freezer's refrigerator
    else:
        assert key_values(read(cgroup_dir(workload, ""), "cgroup.events"))["frozen"] == "1"
    before = counter(path)
    time.sleep(0.3)
    assert counter(path) == before, "a paused workload made progress"
    assert rt("pause", cid, check=False).returncode == 1  # paused is not running

    rt("resume", cid)
    assert rt.status(cid) == "running"
    wait_until(lambda: counter(path) > before + 2, 10, "the resumed workload to count on")
    rt("delete", "--force", cid)


def test_signals_to_a_paused_container(env):
    rt, cid = env.rt, env.cid()
    path = bundle(env, ["sh", "-c", "trap 'echo term > /tmp/term; exit 3' TERM; "
                                    "while true; do sleep 0.02; done"])
    rt("run", "--detach", "--bundle", path, cid)
    rt("pause", cid)
    rt("kill", cid, "TERM")  # pending while frozen
    time.sleep(0.2)
    assert rt.status(cid) == "paused" and not os.path.exists(rootfs(path, "tmp", "term"))
    rt("resume", cid)
    assert json.loads(rt("wait", cid, timeout=20).stdout)["exitStatus"] == 3
    assert open(rootfs(path, "tmp", "term")).read() == "term\n"
    rt("delete", cid)

    # SIGKILL reaches frozen tasks: through the sandbox, through the
    # cgroup (cgroup.kill in cgroup2 here), or by delete --force.
    for name, args in (("kill", ["kill"]), ("all", ["kill", "--all"]), ("delete", ["delete", "--force"])):
        other = env.cid(name)
        rt("run", "--detach", "--bundle", bundle(env, COUNTING), other)
        pid = sandbox_pid(env, other)
        rt("pause", other)
        rt(*args, other, *(["KILL"] if args[0] == "kill" else []))
        assert wait_for_exit(pid, 10), f"{' '.join(args)} left a paused container running"
        if args[0] == "kill":
            assert rt.status(other) == "stopped"
            rt("delete", other)
        assert all_dirs_named(other) == []


# -- placement ----------------------------------------------------------------------------------------------

def test_every_process_in_every_hierarchy_and_the_cgroup_namespace_root(env):
    rt, cid = env.rt, env.cid()
    path = bundle(env, ["sh", "-c", "cat /proc/self/cgroup > /tmp/cgroup; sleep 1000"])
    rt("run", "--detach", "--bundle", path, cid)
    pid = sandbox_pid(env, cid)
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert lines and all(line.endswith(f"/runsc-py/{cid}") for line in lines), lines
    # the shell creates the file before cat writes it: wait for its content
    view = rootfs(path, "tmp", "cgroup")
    wait_until(lambda: os.path.exists(view) and os.path.getsize(view) > 0, 10, "the workload's view")
    inside = open(rootfs(path, "tmp", "cgroup")).read().splitlines()
    # Its own cgroup namespace, made after the move: its cgroup is the root.
    assert inside and all(line.endswith(":/") for line in inside), inside
    gofer = [p for p in map(int, read(cgroup_dir(pid, "pids"), "cgroup.procs").split())
             if p != pid and p not in children(pid)]
    assert len(gofer) == 1, "the gofer is in the container's cgroup too"
    rt("exec", "--detach", cid, "sleep", "999")
    members = read(cgroup_dir(pid, "pids"), "cgroup.procs").split()
    exec_pid = [p for p in map(int, members) if open(f"/proc/{p}/cmdline").read().startswith("sleep\x00999")]
    assert exec_pid, "the exec'd process joined the container's cgroup"
    rt("kill", "--all", cid, "TERM")
    # PID 1 (sleep, no handler) ignores SIGTERM from outside as with runc; the exec'd process does not.
    assert wait_for_exit(exec_pid[0], 10) and not wait_for_exit(pid, 0.5)
    rt("kill", "--all", cid, "KILL")
    assert wait_for_exit(pid, 10)
    rt("delete", cid)


def test_delete_removes_only_the_cgroups_create_made(env):
    rt = env.rt
    # The default path: /runsc-py/<id> in every hierarchy, all gone after delete.
    cid = env.cid("default")
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"]), cid)
    assert len(all_dirs_named(cid)) == len(hierarchies())
    rt("delete", "--force", cid)
    assert all_dirs_named(cid) == []

    # A leaf that existed before create stays, and so does a parent that did.
    pre, parent = f"{env.token}-pre", f"{env.token}-parent"
    made = []
    try:
        for mountpoint, version, controllers in hierarchies():
            for name in (pre, parent):
                d = os.path.join(mountpoint, name)
                os.mkdir(d)
                made.append(d)
                if version == 1 and "cpuset" in controllers:
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        with open(os.path.join(d, f), "w") as out:
                            out.write(read(mountpoint, f))
        joined, under = env.cid("joined"), env.cid("under")
        rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], cgroups_path=f"/{pre}"), joined)
        rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], cgroups_path=f"/{parent}/{under}"), under)
        assert cgroup_dir(sandbox_pid(env, joined), "pids").endswith(f"/{pre}")
        # A cgroup with processes in it is nobody's to join.
        busy = rt("run", "--detach", "--bundle", bundle(env, ["true"], cgroups_path=f"/{pre}"), env.cid("busy"),
                  check=False)
        assert busy.returncode == 1 and "is not empty" in busy.stderr
        rt("delete", "--force", joined)
        rt("delete", "--force", under)
        assert all(os.path.isdir(d) for d in made), "a cgroup that existed before create was removed"
        assert all_dirs_named(under) == []
    finally:
        for d in made:
            os.rmdir(d)


def test_default_path_is_never_shared(env):
    """With no cgroupsPath the leaf must be new: one left by someone else
    (the same id in another runtime root) is not joined."""
    cid = env.cid()
    mountpoint = holder("pids")[0]
    parent = os.path.join(mountpoint, "runsc-py")
    made_parent = not os.path.isdir(parent)
    os.makedirs(os.path.join(parent, cid))
    try:
        taken = env.rt("create", "--bundle", bundle(env, ["true"]), cid, check=False)
        assert taken.returncode == 1 and "exists already" in taken.stderr, taken.stderr
        assert os.path.isdir(os.path.join(parent, cid))
        assert [d for d in all_dirs_named(cid) if not d.startswith(parent + "/")] == []
    finally:
        os.rmdir(os.path.join(parent, cid))
        if made_parent:
            try:
                os.rmdir(parent)
            except OSError:
                pass  # a container of another test is in it now


def test_relative_path_is_below_the_runtimes_own_cgroup(env):
    rt, cid = env.rt, env.cid()
    relative = f"{env.token}-rel/{cid}"
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], cgroups_path=relative), cid)
    with open("/proc/self/cgroup") as f:
        own = {c: p for _, c, p in (line.rstrip("\n").split(":", 2) for line in f)}
    pid = sandbox_pid(env, cid)
    memory_own = next(p for c, p in own.items() if "memory" in c.split(","))
    assert cgroup_dir(pid, "memory") == holder("memory")[0] + memory_own.rstrip("/") + "/" + relative
    rt("delete", "--force", cid)
    assert all_dirs_named(f"{env.token}-rel") == []  # created by this create: removed with it


# -- refusals ---------------------------------------------------------------------------------------

REFUSED = [
    ({"network": {"classID": 1048577}}, "linux.resources.network.classID: the net_cls controller"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "linux.resources.rdma (the rdma controller) is not supported"),
    ({"unified": {"../escape": "1"}}, "linux.resources.unified.../escape: not a file name"),
    ({"memory": {"swappiness": 500}}, "linux.resources.memory.swappiness"),
]


@pytest.mark.parametrize("resources, words", REFUSED, ids=[w.split(":")[0] for _, w in REFUSED])
def test_refused_before_anything_exists(env, resources, words):
    if "net_cls" in words and holder("net_cls"):
        pytest.skip("this host mounts net_cls: the field is applied, not refused")
    cid = env.cid()
    result = env.rt("create", "--bundle", bundle(env, ["true"], resources), cid, check=False)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not os.path.exists(env.root) or os.listdir(env.root) == []
    assert all_dirs_named(cid) == []


def test_unified_memory_refused_where_cgroup2_has_no_memory(env):
    if holder("memory")[1] == 2:
        pytest.skip("cgroup2 holds the memory controller on this host")
    cid = env.cid()
    result = env.rt("create", "--bundle", bundle(env, ["true"], {"unified": {"memory.max": "1"}}), cid,
                    check=False)
    assert result.returncode == 1
    assert "linux.resources.unified.memory.max: the memory controller is not in this host's cgroup v2" \
        in result.stderr


def test_systemd_cgroup_without_systemd_and_features(env):
    """The systemd driver itself is tested in the VM stage (tests/vm/test_systemd.py)."""
    if os.path.exists("/run/systemd/private") or os.path.exists("/run/dbus/system_bus_socket"):
        pytest.skip("this host runs systemd or a system bus")
    cid = env.cid()
    refused = env.rt("--systemd-cgroup", "create", "--bundle", bundle(env, ["true"]), cid, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "runsc-py: --systemd-cgroup: systemd is not running (no connection at /run/dbus/system_bus_socket "
        "or /run/systemd/private)"]
    assert env.rt("--systemd-cgroup", "delete", "--force", cid).returncode == 0
    assert env.rt("--systemd-cgroup", "state", cid, check=False).returncode == 1
    features = json.loads(env.rt("features").stdout)
    assert features["linux"]["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False,
                                           "rdma": False}


# -- cgroup v2 where this host offers it ------------------------------------------------------------------

def test_v2_hugetlb_limit_and_stats(env):
    found = holder("hugetlb")
    pages = "/sys/kernel/mm/hugepages"
    sizes = sorted(int(n[len("hugepages-"):-len("kB")]) for n in os.listdir(pages)) if os.path.isdir(pages) else []
    if not found or not sizes:
        pytest.skip("this host has no hugetlb controller or no huge page sizes")
    kib = sizes[0]
    size = f"{kib >> 20}GB" if kib % (1 << 20) == 0 else f"{kib >> 10}MB"
    limit = 4 * kib * 1024  # the kernel rounds a limit down to whole pages
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"],
                                             {"hugepageLimits": [{"pageSize": size, "limit": limit}]}), cid)
    directory = cgroup_dir(sandbox_pid(env, cid), "hugetlb")
    name = f"hugetlb.{size}.max" if found[1] == 2 else f"hugetlb.{size}.limit_in_bytes"
    assert int(read(directory, name)) == limit
    assert stats(env, cid)["hugetlb"][size]["failcnt"] == 0
    rt("delete", "--force", cid)


def test_v2_core_files_freeze_kill_and_procs(env):
    """cgroup.procs, cgroup.freeze and cgroup.kill of the unified hierarchy,
    through the runtime's v2 code on a scratch cgroup (the container's
    freezer is the v1 one where the host has it)."""
    from runsc_py.cgroups import files, v2
    found = holder("")
    if not found:
        pytest.skip("this host has no cgroup2 hierarchy")
    scratch = os.path.join(found[0], f"{env.token}-v2")
    if not os.path.exists(os.path.join(found[0], "cgroup.procs")):
        pytest.skip("the cgroup2 mount has no cgroup.procs")
    os.mkdir(scratch)
    child = os.fork()
    if child == 0:
        while True:
            time.sleep(0.01)
    try:
        if not files.exists(scratch, "cgroup.freeze") or not files.exists(scratch, "cgroup.kill"):
            pytest.skip("this kernel's cgroup2 has no cgroup.freeze or cgroup.kill")
        files.write(scratch, "cgroup.procs", child)
        assert files.pids(scratch) == [child]
        v2.freeze(scratch)
        assert key_values(read(scratch, "cgroup.events"))["frozen"] == "1" and v2.frozen(scratch)
        v2.thaw(scratch)
        assert key_values(read(scratch, "cgroup.events"))["frozen"] == "0"
        v2.freeze(scratch)
        v2.kill(scratch)  # reaches frozen tasks
        assert wait_for_exit(child, 10)
        assert v2.wait_empty(scratch, 10)
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(child, 0)
        os.rmdir(scratch)


V2_ONLY = [
    ("memory", {"memory": {"limit": 64 << 20}}, "memory.max", str(64 << 20)),
    ("pids", {"pids": {"limit": 17}}, "pids.max", "17"),
    ("cpu", {"cpu": {"quota": 20000, "period": 100000}}, "cpu.max", "20000 100000"),
    ("io", {"blockIO": {"weight": 500}}, None, None),
]


def v2_controllers():
    return next((controllers for _, version, controllers in hierarchies() if version == 2), set())


@pytest.mark.parametrize("controller, resources, name, value", V2_ONLY, ids=[c for c, *_ in V2_ONLY])
def test_v2_controller_files(env, controller, resources, name, value):
    if controller not in v2_controllers():
        pytest.skip(f"this host's cgroup2 hierarchy has no {controller} controller "
                    f"(it is bound to cgroup v1 or absent): its v2 files cannot be tested here")
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, ["sleep", "1000"], resources), cid)
    directory = cgroup_dir(sandbox_pid(env, cid), "")
    if name is None:
        assert os.path.exists(os.path.join(directory, "io.weight")) or \
            os.path.exists(os.path.join(directory, "io.bfq.weight"))
    else:
        assert read(directory, name) == value
    rt("delete", "--force", cid)


class PureV2Runtime:
    """The runtime on a pure cgroup v2 host: each command runs in a
    private mount namespace whose /sys/fs/cgroup is a fresh mount of this
    host's cgroup2 hierarchy and nothing else (the v1 hierarchies are
    unmounted there). The kernel objects are the real ones; only the
    runtime's view of the layout differs."""

    PREFIX = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh"]

    def __init__(self, rt):
        self.rt = rt

    def __call__(self, *args, **kw):
        argv = self.rt.argv
        self.rt.argv = lambda *a: self.PREFIX + argv(*a)
        try:
            return self.rt(*args, **kw)
        finally:
            self.rt.argv = argv


def test_pure_v2_view_freeze_kill_hugetlb_and_removal(env):
    found = holder("")
    if not found or found[0] == "/sys/fs/cgroup":
        pytest.skip("needs a hybrid host's cgroup2 hierarchy mounted below /sys/fs/cgroup")
    if "hugetlb" not in v2_controllers() or not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("this host's cgroup2 hierarchy has no hugetlb controller with 2MB pages")
    rt, v2rt, cid = env.rt, PureV2Runtime(env.rt), env.cid()
    path = bundle(env, ["sh", "-c", "cat /proc/self/cgroup > /tmp/cgroup; "
                                    "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done"],
                  {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}]})
    directory = os.path.join(found[0], "runsc-py", cid)  # where /sys/fs/cgroup/runsc-py/ID is, seen from here
    created = False
    try:
        v2rt("create", "--bundle", path, cid)
        created = True
        assert read(directory, "hugetlb.2MB.max") == str(4 << 21)
        pid = sandbox_pid(env, cid)
        assert str(pid) in read(directory, "cgroup.procs").split()
        v2rt("start", cid)
        wait_until(lambda: counter(path) > 2, 10, "the workload to count")
        assert "0::/" in open(rootfs(path, "tmp", "cgroup")).read().splitlines()  # its cgroup namespace root

        v2rt("pause", cid)  # cgroup.freeze: there is no v1 freezer in this view
        assert key_values(read(directory, "cgroup.events"))["frozen"] == "1"
        before = counter(path)
        time.sleep(0.3)
        assert counter(path) == before and rt.status(cid) == "paused"
        v2rt("resume", cid)
        assert key_values(read(directory, "cgroup.events"))["frozen"] == "0"
        wait_until(lambda: counter(path) > before + 2, 10, "the resumed workload to count on")

        cpu = json.loads(v2rt("events", "--stats", cid).stdout)["data"]["cpu"]["usage"]
        assert cpu["total"] > 0  # cgroup2's own cpu.stat
        v2rt("pause", cid)
        v2rt("kill", "--all", cid, "KILL")  # cgroup.kill, through the freeze
        assert wait_for_exit(pid, 10)
        v2rt("delete", cid)
        created = False
        assert not os.path.exists(directory)
    finally:
        if created:
            v2rt("delete", "--force", cid, check=False)


def test_kill_all_of_a_created_container_ends_it(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", bundle(env, ["sleep", "1000"]), cid)
    pid = sandbox_pid(env, cid)
    rt("kill", "--all", cid, "TERM")
    assert wait_for_exit(pid, 10), "a signal that ends a process ends a container that has not started"
    assert rt.status(cid) == "stopped"
    rt("delete", cid)


def test_pod_member_has_its_own_cgroup(env):
    """A member's processes are forked inside the pod's sandbox; its
    sandbox process joins the member's cgroup when it reports itself."""
    rt = env.rt
    pod, member = env.cid("pod"), env.cid("member")
    sandbox = default_config(["sleep", "1000"])
    sandbox["annotations"] = {"io.kubernetes.cri.container-type": "sandbox"}
    rt("create", "--bundle", env.bundle(config=sandbox), pod)
    pod_pid = sandbox_pid(env, pod)
    config = default_config(COUNTING)
    config["annotations"] = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": pod}
    config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}] + [
        {"type": kind, "path": f"/proc/{pod_pid}/ns/{name}"} for kind, name in
        (("ipc", "ipc"), ("uts", "uts"), ("network", "net"))]
    config["linux"]["resources"] = {"devices": DENY_ALL, "pids": {"limit": 50}}
    config.pop("hostname", None)
    path = env.bundle(config=config)
    rt("create", "--bundle", path, member)
    member_pid = sandbox_pid(env, member)
    assert cgroup_dir(member_pid, "pids").endswith(f"/runsc-py/{member}")
    assert read(cgroup_dir(member_pid, "pids"), "pids.max") == "50"
    assert cgroup_dir(pod_pid, "pids").endswith(f"/runsc-py/{pod}")
    rt("start", member)
    wait_until(lambda: counter(path) > 2, 10, "the member's workload to count")
    rt("pause", member)
    before = counter(path)
    time.sleep(0.3)
    assert counter(path) == before and rt.status(pod) == "created"  # the pod itself is not frozen
    rt("resume", member)
    rt("delete", "--force", member)
    rt("delete", "--force", pod)
    assert all_dirs_named(member) == [] and all_dirs_named(pod) == []
