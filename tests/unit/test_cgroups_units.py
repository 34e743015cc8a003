"""cgroup value conversions and the resource plan, without a kernel: the
v1 -> v2 conversions runc and crun use, runc's size and path rules, and
which field lands in which file (or is refused, naming the field) on v1,
hybrid and pure v2 hosts."""

import pytest

from runsc_py.cgroups import Hierarchy, cgroups_path, resources
from runsc_py.cgroups.resources import (blkio_to_io_weight, cpu_max, merge, page_size_name,
                                        parse_cpu_list, ram_in_bytes, shares_to_weight, swap_to_v2, v2_limit)
from runsc_py.errors import Failure

V1_ALL = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls", "net_prio")


class FakeHost:
    """Placement of controllers: v1 hierarchies named after their
    controller, the rest in a v2 hierarchy."""

    def __init__(self, v1=(), v2=None):
        self.v1, self.v2 = set(v1), v2

    def holder(self, controller):
        if controller in self.v1:
            return controller, 1
        name = "io" if controller == "blkio" else controller
        if self.v2 is not None and name in self.v2:
            return "unified", 2
        return None

    def unified(self):
        return None if self.v2 is None else ("unified", frozenset(self.v2))


V1 = FakeHost(v1=V1_ALL)
HYBRID = FakeHost(v1=("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"), v2={"hugetlb"})
V2 = FakeHost(v2={"cpu", "cpuset", "io", "memory", "hugetlb", "pids"})


def writes(res, host, **kw):
    """The plan as (hierarchy, function, args) tuples; the device rules
    (always there on a host with a v1 devices controller) only if asked."""
    kw.setdefault("skip_devices", "devices" not in res)
    steps, _ = resources.plan(res, host, **kw)
    return [(s.key, s.fn.__name__, s.args) for s in steps]


def refused(res, host, **kw):
    with pytest.raises(Failure) as info:
        resources.plan(res, host, **kw)
    return str(info.value)


# -- conversions --------------------------------------------------------------------------------

@pytest.mark.parametrize("shares, weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (1, 1), (10 ** 6, 10000)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_to_io_weight(blkio, io):
    assert blkio_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, memory, v2", [
    (0, -1, -1),        # unlimited memory, no swap given: both unlimited
    (-1, 100, -1), (0, 100, 0), (200, 100, 100), (100, 100, 0), (300, -1, 300),
])
def test_swap_to_v2(swap, memory, v2):
    assert swap_to_v2(swap, memory) == v2


@pytest.mark.parametrize("swap, memory", [(50, 100), (100, 0)])
def test_swap_to_v2_refuses_nonsense(swap, memory):
    with pytest.raises(ValueError):
        swap_to_v2(swap, memory)


def test_v2_number_forms():
    assert v2_limit(-1) == "max" and v2_limit(4096) == "4096"
    assert cpu_max(50000, 100000) == "50000 100000"
    assert cpu_max(0, 100000) == "max 100000"
    assert cpu_max(-1, 0) == "max 100000"
    assert cpu_max(20000, 0) == "20000 100000"


@pytest.mark.parametrize("text, size", [("1024", 1024), ("100M", 100 << 20), ("100m", 100 << 20),
                                        ("1.5g", 3 << 29), ("512KiB", 512 << 10), ("10b", 10),
                                        ("2 GB", 2 << 30), ("1t", 1 << 40)])
def test_ram_in_bytes(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text", ["", "abc", "-1", "1x", "M", "1..5m"])
def test_ram_in_bytes_refuses(text):
    with pytest.raises(ValueError):
        ram_in_bytes(text)


def test_small_forms():
    assert page_size_name(2048) == "2MB" and page_size_name(1 << 20) == "1GB" and page_size_name(64) == "64KB"
    assert parse_cpu_list("0-3,7\n") == [0, 1, 2, 3, 7] and parse_cpu_list("") == []


def test_update_zeros_set_nothing():
    new = {"memory": {"limit": 0, "swap": 5}, "cpu": {"shares": 0, "burst": 0, "idle": 0}, "pids": {"limit": 0}}
    assert resources.without_unset(new) == {"memory": {"swap": 5}, "cpu": {"burst": 0, "idle": 0}, "pids": {}}
    assert merge({"pids": {"limit": 9}}, resources.without_unset(new))["pids"] == {"limit": 9}


def test_merge_is_field_by_field_for_objects_only():
    old = {"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}, "hugepageLimits": [{"pageSize": "2MB"}]}
    new = {"memory": {"limit": 3}, "hugepageLimits": [], "cpu": {"shares": 2}}
    assert merge(old, new) == {"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "hugepageLimits": [],
                               "cpu": {"shares": 2}}
    assert old["memory"] == {"limit": 1, "swap": 2}


# -- paths ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, inner", [
    (None, "/runsc-py/box"), ("", "/runsc-py/box"), ("/a/b", "/a/b"), ("/a/../b", "/b"), ("//a//b/", "/a/b"),
    ("a/b", "a/b"), ("../../x", "x"), ("a/../../y", "y"), ("slice:prefix:name", "slice:prefix:name"),
])
def test_cgroups_path_is_cleaned_like_runc(given, inner):
    assert cgroups_path(given, "box") == inner


@pytest.mark.parametrize("given", ["/", "/..", ".", "a/.."])
def test_cgroups_path_must_name_a_cgroup_of_its_own(given):
    with pytest.raises(Failure, match="linux.cgroupsPath"):
        cgroups_path(given, "box")


def test_directory_absolute_relative_and_mount_roots():
    mem = Hierarchy("memory", 1, "/sys/fs/cgroup/memory", "/", frozenset({"memory"}), "/process_api/x")
    assert mem.directory("/runsc-py/c", False) == "/sys/fs/cgroup/memory/runsc-py/c"
    assert mem.directory("rel/c", False) == "/sys/fs/cgroup/memory/process_api/x/rel/c"
    # A mount that shows only part of the hierarchy (inside a container).
    inner = Hierarchy("pids", 1, "/sys/fs/cgroup/pids", "/docker/abc", frozenset({"pids"}), "/docker/abc/sub")
    assert inner.directory("rel", False) == "/sys/fs/cgroup/pids/sub/rel"
    # Pure v2: relative to the parent of one's own cgroup (no internal processes).
    unified = Hierarchy("unified", 2, "/sys/fs/cgroup", "/", frozenset(), "/user.slice/session-1.scope")
    assert unified.directory("c", True) == "/sys/fs/cgroup/user.slice/c"
    outside = Hierarchy("cpu", 1, "/sys/fs/cgroup/cpu", "/docker/abc", frozenset({"cpu"}), "/elsewhere")
    with pytest.raises(Failure, match="outside"):
        outside.directory("rel", False)


# -- the plan ---------------------------------------------------------------------------------------

def test_memory_v1_and_v2():
    mem = {"memory": {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10, "disableOOMKiller": True}}
    assert writes(mem, V1) == [
        ("memory", "memory_and_swap", (100, 200)),
        ("memory", "write", ("memory.soft_limit_in_bytes", 50)),
        ("memory", "write", ("memory.swappiness", 10)),
        ("memory", "write", ("memory.oom_control", 1)),
    ]
    assert writes({"memory": {"limit": 100, "swap": 200, "reservation": 50}}, V2) == [
        ("unified", "write", ("memory.swap.max", "100")),
        ("unified", "write", ("memory.max", "100")),
        ("unified", "write", ("memory.low", "50")),
    ]
    assert writes({"memory": {"limit": 100, "swap": 100}}, V2)[0] == ("unified", "write", ("memory.swap.max", "0"))
    assert writes({"memory": {"limit": -1}}, V2) == [("unified", "write_if_exists", ("memory.swap.max", "max")),
                                                     ("unified", "write", ("memory.max", "max"))]
    # Docker's "unset" swappiness (-1 as a uint64) is no value.
    assert writes({"memory": {"swappiness": (1 << 64) - 1}}, V2) == []


@pytest.mark.parametrize("mem, field", [
    ({"kernel": 1 << 20}, "linux.resources.memory.kernel: cgroup v2 has no kernel memory limit"),
    ({"kernelTCP": 1 << 20}, "linux.resources.memory.kernelTCP: cgroup v2"),
    ({"swappiness": 10}, "linux.resources.memory.swappiness: cgroup v2"),
    ({"disableOOMKiller": True}, "linux.resources.memory.disableOOMKiller: cgroup v2"),
    ({"limit": 10, "swap": 5}, "linux.resources.memory.swap: memory+swap 5 is less than"),
])
def test_memory_v2_refusals(mem, field):
    assert refused({"memory": mem}, V2).startswith(field)


def test_memory_refusals_everywhere():
    assert "memory.swappiness: 101 is out of range" in refused({"memory": {"swappiness": 101}}, V1)
    assert "memory.limit: -2 is not a size" in refused({"memory": {"limit": -2}}, V1)
    assert "memory.useHierarchy: false is not possible" in refused({"memory": {"useHierarchy": False}}, V1)


def test_cpu_v1_and_v2():
    cpu = {"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 0, "idle": 1, "cpus": "0-1",
                   "mems": "0"}}
    assert writes(cpu, V1) == [
        ("cpu", "cpu_shares", (1024,)),
        ("cpu", "cfs", (100000, 50000)),
        ("cpu", "write", ("cpu.cfs_burst_us", 0)),
        ("cpu", "write", ("cpu.idle", 1)),
        ("cpuset", "write", ("cpuset.cpus", "0-1")),
        ("cpuset", "write", ("cpuset.mems", "0")),
    ]
    # The kernel refuses cpu.weight for an idle cgroup (EINVAL): not written then.
    assert writes(cpu, V2) == [
        ("unified", "write", ("cpu.idle", 1)),
        ("unified", "write", ("cpu.max", "50000 100000")),
        ("unified", "write", ("cpu.max.burst", 0)),
        ("unified", "write", ("cpuset.cpus", "0-1")),
        ("unified", "write", ("cpuset.mems", "0")),
    ]
    not_idle = {"cpu": {"shares": 1024, "idle": 0}}
    assert writes(not_idle, V2) == [("unified", "write", ("cpu.idle", 0)), ("unified", "write", ("cpu.weight", 39))]
    rt = {"cpu": {"realtimeRuntime": 950, "realtimePeriod": 1000}}
    assert writes(rt, V1) == [("cpu", "write", ("cpu.rt_period_us", 1000)),
                              ("cpu", "write", ("cpu.rt_runtime_us", 950))]
    assert "cpu.realtimeRuntime: the cgroup v2 cpu controller has no realtime limits" in refused(rt, V2)


def test_pids_block_io_and_huge_pages():
    assert writes({"pids": {"limit": 10}}, V1) == [("pids", "write", ("pids.max", 10))]
    assert writes({"pids": {"limit": -1}}, V2) == [("unified", "write", ("pids.max", "max"))]
    assert writes({"pids": {"limit": 0}}, V2) == []
    bio = {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                       "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                       "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]}}
    assert writes(bio, V1) == [
        ("blkio", "first_existing", (("blkio.bfq.weight", 500), ("blkio.weight", 500))),
        ("blkio", "first_existing", (("blkio.bfq.weight_device", "8:0 100"), ("blkio.weight_device", "8:0 100"))),
        ("blkio", "write", ("blkio.throttle.read_bps_device", "8:0 1000")),
        ("blkio", "write", ("blkio.throttle.write_iops_device", "8:0 10")),
    ]
    assert writes(bio, V2) == [
        ("unified", "first_existing", (("io.bfq.weight", 500), ("io.weight", 4950))),
        ("unified", "first_existing", (("io.bfq.weight", "8:0 100"), ("io.weight", "8:0 910"))),
        ("unified", "write", ("io.max", "8:0 rbps=1000")),
        ("unified", "write", ("io.max", "8:0 wiops=10")),
    ]
    assert "blockIO.leafWeight: cgroup v2 has no leaf weights" in refused({"blockIO": {"leafWeight": 20}}, V2)
    sizes = resources.host_page_sizes()
    if sizes:
        huge = {"hugepageLimits": [{"pageSize": sizes[0], "limit": 1 << 21}]}
        # hugetlb lives in the v2 half of a hybrid host like this project's CI host.
        steps, v2_controllers = resources.plan(huge, HYBRID, skip_devices=True)
        assert [(s.key, s.args) for s in steps] == [("unified", (f"hugetlb.{sizes[0]}.max", 1 << 21))]
        assert v2_controllers == {"hugetlb"}
    bad = refused({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, HYBRID)
    assert bad.startswith("linux.resources.hugepageLimits[0].pageSize: '3MB' is not a huge page size")


def test_missing_controllers_are_refused_naming_the_field():
    assert refused({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, V1) == \
        "linux.resources.hugepageLimits: the hugetlb controller is not available on this host"
    assert refused({"network": {"classID": 1}}, HYBRID).startswith(
        "linux.resources.network.classID: the net_cls controller is not available on this host")
    priorities = {"network": {"priorities": [{"name": "eth0", "priority": 1}]}}
    assert "(it exists only in cgroup v1)" in refused(priorities, V2)
    assert writes({"network": {"classID": 16, "priorities": [{"name": "eth0", "priority": 3}]}}, V1) == [
        ("net_cls", "write", ("net_cls.classid", 16)), ("net_prio", "write", ("net_prio.ifpriomap", "eth0 3"))]
    assert refused({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, V2) == \
        "linux.resources.rdma (the rdma controller) is not supported"
    assert refused({"pids": {"limit": 3}}, FakeHost()) == \
        "linux.resources.pids.limit: the pids controller is not available on this host"


def test_unified_entries():
    assert writes({"unified": {"hugetlb.2MB.max": "4096", "cgroup.max.depth": "3"}}, HYBRID) == [
        ("unified", "write_existing", ("hugetlb.2MB.max", "4096")),
        ("unified", "write_existing", ("cgroup.max.depth", "3"))]
    assert refused({"unified": {"memory.max": "1"}}, HYBRID) == \
        "linux.resources.unified.memory.max: the memory controller is not in this host's cgroup v2 hierarchy"
    assert "not a file name" in refused({"unified": {"../memory.max": "1"}}, V2)
    assert "not a file name" in refused({"unified": {"..": "1"}}, V2)
    assert "the runtime's to manage" in refused({"unified": {"cgroup.procs": "1"}}, V2)
    assert refused({"unified": {"pids.max": "1"}}, V1) == \
        "linux.resources.unified: needs cgroup v2, and this host has only cgroup v1"
