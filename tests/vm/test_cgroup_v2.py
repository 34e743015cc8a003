"""Every cgroup v2 resource the runtime spec maps, on a pure cgroup v2
host (the VM stage's guest): applied at create, changed by `update`,
reported by `events --stats`, and proven twice, from the host (the files
of the container's cgroup, found from the kernel's /proc/PID/cgroup) and
from inside the container (its own /sys/fs/cgroup, the cgroup mount of
the default spec, where its cgroup namespace makes its cgroup the root).

The guest runs under qemu's TCG on CI, where every runtime call takes
seconds: each test makes one container and checks many things in it.
Conversions are the runtime spec's v1 values as runc and crun convert
them (resources.py): shares 1024 -> cpu.weight 39, blkio weight 500 ->
io.weight 4950, memory+swap 96M with memory 64M -> memory.swap.max 32M."""

import json
import os
import subprocess

import pytest

from tests.integration.test_cgroups import (all_dirs_named, bundle, cgroup_dir, key_values, read,
                                            sandbox_pid, stats)
from tests.support.runtime import wait_until

MiB = 1 << 20
SLEEP = ["sleep", "1000"]


def inside(env, cid, *names):
    """{file: content} of the container's own /sys/fs/cgroup, read by a
    process exec'd in it (one exec for all files: each call costs)."""
    script = 'cd /sys/fs/cgroup && for f in "$@"; do printf "%s=%s\\n" "$f" "$(tr "\\n" ";" < "$f")"; done'
    out = env.rt("exec", cid, "sh", "-c", script, "sh", *names).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert set(values) == set(names), out
    return {k: v.rstrip(";") for k, v in values.items()}


def both(env, cid, directory, expected):
    """Each file has the expected content seen from the host and from the container."""
    host = {name: read(directory, name) for name in expected}
    assert host == expected, "host side"
    assert inside(env, cid, *expected) == expected, "inside the container"


def v2_dir(env, cid):
    directory = cgroup_dir(sandbox_pid(env, cid), "")
    assert directory == f"/sys/fs/cgroup/runsc-py/{cid}" or "cgroupsPath" in directory
    return directory


def refused(env, resources, words):
    cid = env.cid("refused")
    result = env.rt("create", "--bundle", bundle(env, ["true"], resources), cid, check=False)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert all_dirs_named(cid) == [] and not os.path.exists(os.path.join(env.root, cid))


# -- memory --------------------------------------------------------------------------------------

def test_memory_max_swap_low_update_and_stats(env):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, SLEEP, {"memory": {"limit": 64 * MiB, "swap": 96 * MiB,
                                                                      "reservation": 32 * MiB}}), cid)
    directory = v2_dir(env, cid)
    both(env, cid, directory, {"memory.max": str(64 * MiB), "memory.swap.max": str(32 * MiB),
                               "memory.low": str(32 * MiB)})
    rt("update", "--memory", "128M", "--memory-swap", "256M", "--memory-reservation", "48M", cid)
    both(env, cid, directory, {"memory.max": str(128 * MiB), "memory.swap.max": str(128 * MiB),
                               "memory.low": str(48 * MiB)})
    memory = stats(env, cid)["memory"]
    assert memory["usage"]["limit"] == 128 * MiB and 0 < memory["usage"]["usage"] < 128 * MiB
    assert memory["swap"]["limit"] == 256 * MiB  # reported as memory+swap, like v1 and runc
    assert memory["raw"]["anon"] >= 0 and "file" in memory["raw"]
    rt("update", "--memory", "-1", "--memory-swap", "-1", cid)
    assert read(directory, "memory.max") == "max" and read(directory, "memory.swap.max") == "max"
    rt("delete", "--force", cid)
    assert not os.path.exists(directory)


def test_memory_fields_v2_cannot_have_are_refused(env):
    refused(env, {"memory": {"limit": 64 * MiB, "disableOOMKiller": True}},
            "linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
    refused(env, {"memory": {"limit": 64 * MiB, "swappiness": 10}},
            "linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness")
    refused(env, {"memory": {"kernel": 64 * MiB}}, "linux.resources.memory.kernel: cgroup v2 has no kernel memory")


def test_oom_kill_exits_137_and_events_report_it(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", bundle(env, ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
                                    {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}), cid)
    directory = v2_dir(env, cid)
    assert read(directory, "memory.max") == str(32 * MiB) and read(directory, "memory.swap.max") == "0"
    assert key_values(read(directory, "memory.events"))["oom_kill"] == "0"
    rt("start", cid)
    out = json.loads(rt("wait", cid, timeout=60).stdout)
    assert out["exitStatus"] == 137, "allocating past memory.max is an OOM kill"
    assert int(key_values(read(directory, "memory.events"))["oom_kill"]) >= 1
    rt("delete", cid)
    assert not os.path.exists(directory)


# -- cpu and cpuset -------------------------------------------------------------------------------

def test_cpu_weight_max_burst_idle_cpuset_update_and_stats(env):
    rt, cid = env.rt, env.cid()
    # A busy loop at 5% (then 10%) of a CPU: throttled at once, and it
    # leaves the guest's few (emulated) CPUs to the test.
    cpu = {"shares": 1024, "quota": 5000, "period": 100000, "burst": 1000, "cpus": "1", "mems": "0"}
    rt("run", "--detach", "--bundle", bundle(env, ["sh", "-c", "while :; do :; done"], {"cpu": cpu}), cid)
    directory = v2_dir(env, cid)
    both(env, cid, directory, {"cpu.weight": "39", "cpu.max": "5000 100000", "cpu.max.burst": "1000",
                               "cpu.idle": "0", "cpuset.cpus": "1", "cpuset.mems": "0",
                               "cpuset.cpus.effective": "1"})
    rt("update", "--cpu-share", "512", "--cpu-quota", "5000", "--cpu-period", "50000", "--cpu-burst", "2000",
       "--cpuset-cpus", "0", cid)
    both(env, cid, directory, {"cpu.weight": "20", "cpu.max": "5000 50000", "cpu.max.burst": "2000",
                               "cpuset.cpus": "0", "cpuset.cpus.effective": "0"})
    data = stats(env, cid)
    assert data["cpu"]["usage"]["total"] > 0 and data["cpu"]["throttling"]["throttledPeriods"] > 0
    assert data["cpuset"] == {"cpus": [0], "mems": [0]}
    # cpu.idle 1: the cgroup's tasks run as SCHED_IDLE (its weight is then the kernel's).
    rt("update", "--cpu-idle", "1", cid)
    both(env, cid, directory, {"cpu.idle": "1"})
    rt("delete", "--force", cid)
    assert not os.path.exists(directory)


def test_cpu_fields_v2_cannot_have_are_refused(env):
    refused(env, {"cpu": {"realtimeRuntime": 1000}},
            "linux.resources.cpu.realtimeRuntime: the cgroup v2 cpu controller has no realtime limits")


# -- pids --------------------------------------------------------------------------------------------

def test_pids_max_update_and_stats(env):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, SLEEP, {"pids": {"limit": 20}}), cid)
    directory = v2_dir(env, cid)
    both(env, cid, directory, {"pids.max": "20"})
    rt("update", "--pids-limit", "30", cid)
    both(env, cid, directory, {"pids.max": "30"})
    data = stats(env, cid)["pids"]
    assert data["limit"] == 30 and data["current"] >= 2
    rt("update", "--pids-limit", "-1", cid)
    assert read(directory, "pids.max") == "max"
    rt("delete", "--force", cid)


# -- io ---------------------------------------------------------------------------------------------

@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a file on the guest's tmpfs: (path, major, minor)."""
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True,
                            check=True, timeout=30).stdout.strip()
    rdev = os.stat(device).st_rdev
    try:
        yield device, os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "--detach", device], check=False, timeout=30)


def test_io_weight_device_weight_throttles_update_and_stats(env, loop_device):
    device, major, minor = loop_device
    number = f"{major}:{minor}"
    # io.weight is iocost's: per-device weights need it enabled on the device
    # (the administrator's switch, io.cost.qos in the root cgroup).
    with open("/sys/fs/cgroup/io.cost.qos", "w") as f:
        f.write(f"{number} enable=1")
    rt, cid = env.rt, env.cid()
    dev = {"major": major, "minor": minor}
    block_io = {"weight": 500, "weightDevice": [dict(dev, weight=200)],
                "throttleReadBpsDevice": [dict(dev, rate=MiB)], "throttleWriteBpsDevice": [dict(dev, rate=2 * MiB)],
                "throttleReadIOPSDevice": [dict(dev, rate=100)], "throttleWriteIOPSDevice": [dict(dev, rate=200)]}
    config_path = bundle(env, SLEEP, {"blockIO": block_io})
    config = json.load(open(os.path.join(config_path, "config.json")))
    config["linux"]["devices"] = [{"path": "/dev/vmdisk", "type": "b", "major": major, "minor": minor,
                                   "fileMode": 0o660, "uid": 0, "gid": 0}]
    json.dump(config, open(os.path.join(config_path, "config.json"), "w"))
    rt("run", "--detach", "--bundle", config_path, cid)
    directory = v2_dir(env, cid)
    weight = f"default 4950;{number} 1981"  # 1 + (w - 10) * 9999 / 990
    limits = f"{number} rbps={MiB} wbps={2 * MiB} riops=100 wiops=200"
    both(env, cid, directory, {"io.weight": weight, "io.max": limits})

    # The throttle holds: 2 MiB of direct reads at 1 MiB/s take over a second.
    out = rt("exec", cid, "sh", "-c", "time dd if=/dev/vmdisk of=/dev/null bs=64k count=32 iflag=direct",
             timeout=60)
    assert "real" in out.stderr and "32+0 records in" in out.stderr, out.stderr
    seconds = [float(line.split()[1]) for line in out.stderr.splitlines() if line.startswith("real")]
    assert seconds and seconds[0] >= 1.0, out.stderr
    blkio = stats(env, cid)["blkio"]
    read_bytes = [e["value"] for e in blkio["ioServiceBytesRecursive"]
                  if (e.get("major"), e.get("minor"), e["op"]) == (major, minor, "Read")]
    assert read_bytes and read_bytes[0] >= 2 * MiB, blkio

    rt("update", "--blkio-weight", "1000", cid)
    assert read(directory, "io.weight").splitlines()[0] == "default 10000"
    rt("delete", "--force", cid)
    assert not os.path.exists(directory)


# -- hugetlb, unified ---------------------------------------------------------------------------

def test_hugetlb_max_and_stats(env):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, SLEEP, {"hugepageLimits": [{"pageSize": "2MB",
                                                                               "limit": 4 * 2 * MiB}]}), cid)
    directory = v2_dir(env, cid)
    both(env, cid, directory, {"hugetlb.2MB.max": str(8 * MiB)})
    assert stats(env, cid)["hugetlb"]["2MB"].get("failcnt", 0) == 0
    rt("delete", "--force", cid)


def test_unified_keys_written_and_updated(env):
    rt, cid = env.rt, env.cid()
    unified = {"memory.high": str(100 * MiB), "pids.max": "9", "cpu.weight": "77"}
    rt("run", "--detach", "--bundle", bundle(env, SLEEP, {"unified": unified}), cid)
    directory = v2_dir(env, cid)
    both(env, cid, directory, unified)
    rt("update", "-r", "-", cid, input=json.dumps({"unified": {"memory.high": str(200 * MiB)}}))
    both(env, cid, directory, {"memory.high": str(200 * MiB), "pids.max": "9"})
    refused_entry = rt("update", "-r", "-", cid, input=json.dumps({"unified": {"memory.nonesuch": "1"}}),
                       check=False)
    assert refused_entry.returncode == 1 and "memory.nonesuch" in refused_entry.stderr
    rt("delete", "--force", cid)


# -- freeze, kill, placement, cleanup ------------------------------------------------------------------

def test_pause_is_cgroup_freeze_and_kill_all_is_cgroup_kill(env):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle(env, SLEEP), cid)
    directory = v2_dir(env, cid)
    rt("exec", "--detach", cid, "sleep", "999")
    rt("pause", cid)
    assert read(directory, "cgroup.freeze") == "1" and key_values(read(directory, "cgroup.events"))["frozen"] == "1"
    assert rt.status(cid) == "paused"
    rt("resume", cid)
    assert read(directory, "cgroup.freeze") == "0" and key_values(read(directory, "cgroup.events"))["frozen"] == "0"
    both(env, cid, directory, {"cgroup.freeze": "0"})
    rt("pause", cid)
    # SIGKILL to all of a frozen cgroup: cgroup.kill reaches frozen tasks.
    rt("kill", "--all", cid, "KILL")
    wait_until(lambda: key_values(read(directory, "cgroup.events"))["populated"] == "0", 10, "the cgroup to empty")
    assert rt.status(cid) == "stopped"
    rt("delete", cid)
    assert not os.path.exists(directory)


def test_nested_cgroups_path_enables_controllers_and_is_removed(env):
    rt, cid = env.rt, env.cid()
    top = f"{env.token}-a"
    path = f"/{top}/b/{cid}"
    rt("run", "--detach", "--bundle", bundle(env, SLEEP, {"memory": {"limit": 64 * MiB}, "pids": {"limit": 10},
                                                          "cpu": {"shares": 2048}}, cgroups_path=path), cid)
    directory = cgroup_dir(sandbox_pid(env, cid), "")
    assert directory == f"/sys/fs/cgroup{path}"
    for level in (f"/sys/fs/cgroup/{top}", f"/sys/fs/cgroup/{top}/b"):
        assert {"memory", "pids", "cpu"} <= set(read(level, "cgroup.subtree_control").split()), level
    both(env, cid, directory, {"memory.max": str(64 * MiB), "pids.max": "10", "cpu.weight": "79"})
    assert inside(env, cid, "cgroup.procs")["cgroup.procs"]  # its cgroup is its namespace's root
    rt("delete", "--force", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/{top}"), "every directory create made is removed"


# -- errors ------------------------------------------------------------------------------------------

def test_a_root_on_9p_is_refused_naming_the_socket(env):
    """The results folder is 9p, which cannot bind unix sockets: create
    says which socket, why, and what to do, and leaves nothing behind."""
    shared = os.environ.get("RUNSC_PY_VM_SHARED")
    if not shared:
        pytest.skip("needs the VM stage's shared 9p folder (RUNSC_PY_VM_SHARED)")
    from tests.support.runtime import Runtime
    root = os.path.join(shared, f"{env.token}-root")
    cid = env.cid()
    result = Runtime(root)("create", "--bundle", bundle(env, ["true"], {"pids": {"limit": 5}}), cid, check=False)
    sock = os.path.join(root, f"{cid}_sandbox:{cid}.sock")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"runsc-py: create: cannot listen on {sock}: No such device or address "
                                     "(the root directory's filesystem cannot hold unix sockets; use a local --root)")
    assert all_dirs_named(cid) == [] and [e for e in os.listdir(root) if cid in e] == []
