"""linux.resources as cgroup file writes, on v1 and on v2.

`plan()` turns the spec's resources into Steps. A Step names the field it
comes from (errors name it), the hierarchy it is written in, and the
function that writes it. Each controller's fields go to the hierarchy that
holds that controller on this host, in that version's terms: the runtime
spec (config-linux.md, "Control groups") speaks cgroup v1, and its values
are converted for v2 the way runc and crun convert them (cpu shares ->
cpu.weight, blkio weight -> io.weight, memory+swap -> swap alone, quota and
period -> cpu.max). A field whose controller this host lacks, or that has
no meaning in the version holding the controller, is refused with the
field's name before anything is created.

Unset values are skipped the way runc skips them: 0 for limits, shares,
quota and periods (0 is not a usable value for any of them); fields the
spec marks optional and where 0 means something (burst, idle) are written
whenever present.
"""

from ..errors import Failure, Unsupported
from . import files, v1, v2

FIELD = "linux.resources"
MAX_UINT64 = (1 << 64) - 1
DEFAULT_CFS_PERIOD = 100000  # us; the kernel's default (cgroup-v2.rst, cpu.max)

_THROTTLES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"))

# Files of the unified hierarchy that are the runtime's to manage, not resources.
_NOT_RESOURCES = frozenset({"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill",
                            "cgroup.freeze", "cgroup.type"})
V2_CONTROLLERS = frozenset({"cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc", "perf_event"})


# -- conversions (runc libcontainer/cgroups/utils.go; crun's are the same) -------------------------

def shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], linearly:
    1 + ((shares - 2) * 9999) / 262142."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)  # the range the v1 kernel clamps to
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly:
    1 + (weight - 10) * 9999 / 990."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap, memory):
    """The spec's swap is memory+swap (v1's memsw); memory.swap.max is swap
    alone. -1 is unlimited, 0 unset."""
    if memory == -1 and swap == 0:
        return -1  # unlimited memory, swap not given: both unlimited (v1 compatibility)
    if swap in (-1, 0) or memory == -1:
        return swap
    if memory == 0:
        raise ValueError("a swap limit needs a memory limit")
    if swap < memory:
        raise ValueError(f"memory+swap {swap} is less than the memory limit {memory}")
    return swap - memory


def v2_limit(value):
    """-1 is "max" in v2 files."""
    return "max" if value == -1 else str(value)


def cpu_max(quota, period):
    """cpu.max is `QUOTA PERIOD`; no quota (0 or -1) is "max"."""
    return f"{quota if quota > 0 else 'max'} {period or DEFAULT_CFS_PERIOD}"


_RAM = r"(\d+(?:\.\d+)?) ?(?:([kmgtp])i?)?b?"
_RAM_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text):
    """A size like runc's flags take (go-units RAMInBytes): `1024`, `100M`,
    `1.5g`, `512KiB`; units are binary and case-insensitive, `b` optional."""
    import re  # only `update` parses sizes: not worth ~4 ms of every create
    match = re.fullmatch(_RAM, text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"invalid size: {text!r}")
    unit = match.group(2)
    return int(float(match.group(1)) * _RAM_UNITS[unit.lower() if unit else None])


def page_size_name(kib):
    """hugepages-2048kB -> "2MB" (the names runc and the kernel's hugetlb files use)."""
    for unit, size in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kib % size == 0:
            return f"{kib // size}{unit}"
    return f"{kib}KB"


def host_page_sizes():
    import os
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except FileNotFoundError:
        return []
    sizes = sorted(int(n[len("hugepages-"):-len("kB")]) for n in names
                   if n.startswith("hugepages-") and n.endswith("kB"))
    return [page_size_name(s) for s in sizes]


def parse_cpu_list(text):
    """`0-3,7` -> [0, 1, 2, 3, 7]."""
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return out


# -- the plan -------------------------------------------------------------------------------------

class Step:
    """One write into the container's cgroup: `fn(dir of key, *args)`."""

    __slots__ = ("key", "field", "fn", "args")

    def __init__(self, key, field, fn, *args):
        self.key, self.field, self.fn, self.args = key, field, fn, args

    def __repr__(self):
        module = self.fn.__module__.rpartition(".")[2]
        return f"Step({self.key!r}, {self.field!r}, {module}.{self.fn.__name__}, {self.args!r})"


def plan(resources, where, devices=(), skip_devices=False, update=False, previous=None):
    """(steps, v2 controllers the steps need) for `resources` (the
    linux.resources dict).

    `where` places controllers: `where.holder(controller)` is the (key,
    version) of the hierarchy that holds it or None, `where.unified()` the
    (key, available controllers) of the v2 hierarchy or None. `devices` is
    linux.devices (they are allowed in the device cgroup: the container
    has them). `update`: the resources replace those of a running container,
    whose device rules were `previous`."""
    planner = _Planner(where, update)
    resources = resources or {}
    planner.memory(resources.get("memory"))
    planner.cpu(resources.get("cpu"))
    planner.pids(resources.get("pids"))
    planner.block_io(resources.get("blockIO"))
    planner.hugepages(resources.get("hugepageLimits"))
    planner.network(resources.get("network"))
    if resources.get("rdma"):
        raise Unsupported(f"{FIELD}.rdma (the rdma controller)")
    if not skip_devices:
        planner.devices(resources.get("devices") or (), devices, previous)
    planner.unified(resources.get("unified"))
    return planner.steps, planner.v2_controllers


class _Planner:
    def __init__(self, where, update):
        self.where = where
        self.update = update
        self.steps = []
        self.v2_controllers = set()

    def place(self, controller, field, v2_name=None):
        found = self.where.holder(controller)
        if found is None:
            raise Failure(f"{field}: the {controller} controller is not available on this host")
        if found[1] == 2:
            self.v2_controllers.add(v2_name or controller)
        return found

    def add(self, key, field, fn, *args):
        self.steps.append(Step(key, field, fn, *args))

    # -- memory ----------------------------------------------------------------------------------
    def memory(self, mem):
        if not mem:
            return
        f = f"{FIELD}.memory"
        if mem.get("useHierarchy") is False:
            raise Failure(f"{f}.useHierarchy: false is not possible: the kernel's memory controller "
                          "is always hierarchical")
        limit, swap, reservation = (mem.get(k) or 0 for k in ("limit", "swap", "reservation"))
        for name, value in (("limit", limit), ("swap", swap), ("reservation", reservation)):
            if value < -1:
                raise Failure(f"{f}.{name}: {value} is not a size in bytes (-1 is unlimited)")
        if 0 < swap < limit:
            raise Failure(f"{f}.swap: memory+swap {swap} is less than the memory limit {limit}")
        swappiness = mem.get("swappiness")
        if swappiness == MAX_UINT64:
            swappiness = None  # Docker's "unset" (-1 as uint64)
        given = [name for name, value in (("limit", limit), ("swap", swap), ("reservation", reservation),
                                          ("kernel", mem.get("kernel")), ("kernelTCP", mem.get("kernelTCP")),
                                          ("swappiness", swappiness),
                                          ("disableOOMKiller", mem.get("disableOOMKiller")))
                 if value]
        if not given:
            return
        key, version = self.place("memory", f"{f}.{given[0]}")
        if version == 1:
            self._memory_v1(key, f, mem, limit, swap, reservation, swappiness)
        else:
            self._memory_v2(key, f, mem, limit, swap, reservation, swappiness)

    def _memory_v1(self, key, f, mem, limit, swap, reservation, swappiness):
        if limit or swap:
            self.add(key, f"{f}.{'limit' if limit else 'swap'}", v1.memory_and_swap, limit, swap)
        if reservation:
            self.add(key, f"{f}.reservation", files.write, "memory.soft_limit_in_bytes", reservation)
        if mem.get("kernel"):
            self.add(key, f"{f}.kernel", files.write, "memory.kmem.limit_in_bytes", mem["kernel"])
        if mem.get("kernelTCP"):
            self.add(key, f"{f}.kernelTCP", files.write, "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"])
        if swappiness is not None:
            if swappiness > 100:
                raise Failure(f"{f}.swappiness: {swappiness} is out of range [0, 100]")
            self.add(key, f"{f}.swappiness", files.write, "memory.swappiness", swappiness)
        if mem.get("disableOOMKiller") is not None:
            self.add(key, f"{f}.disableOOMKiller", files.write, "memory.oom_control",
                     1 if mem["disableOOMKiller"] else 0)

    def _memory_v2(self, key, f, mem, limit, swap, reservation, swappiness):
        for name in ("kernel", "kernelTCP"):
            if mem.get(name):
                raise Failure(f"{f}.{name}: cgroup v2 has no kernel memory limit (kernel memory is "
                              "counted in memory.max)")
        if swappiness is not None:
            raise Failure(f"{f}.swappiness: cgroup v2 has no per-cgroup swappiness")
        if mem.get("disableOOMKiller"):
            raise Failure(f"{f}.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
        if self.update and mem.get("checkBeforeUpdate") and limit:
            self.add(key, f"{f}.limit", v2.check_memory_usage, limit)
        if limit or swap:
            try:
                swap_only = swap_to_v2(swap, limit)
            except ValueError as e:
                raise Failure(f"{f}.swap: {e}") from None
            if swap > 0 or swap == -1:  # swap == memory: no swap at all, "0"
                self.add(key, f"{f}.swap", files.write, "memory.swap.max", v2_limit(swap_only))
            elif swap_only == -1:
                # Unlimited memory makes swap unlimited too, where the
                # kernel accounts swap at all.
                self.add(key, f"{f}.limit", v2.write_if_exists, "memory.swap.max", "max")
            if limit:
                self.add(key, f"{f}.limit", files.write, "memory.max", v2_limit(limit))
        if reservation:
            self.add(key, f"{f}.reservation", files.write, "memory.low", v2_limit(reservation))

    # -- cpu -------------------------------------------------------------------------------------
    def cpu(self, cpu):
        if not cpu:
            return
        f = f"{FIELD}.cpu"
        shares, quota, period, rt_runtime, rt_period = (
            cpu.get(k) or 0 for k in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"))
        burst, idle = cpu.get("burst"), cpu.get("idle")
        given = [name for name, value in (("shares", shares), ("quota", quota), ("period", period),
                                          ("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period))
                 if value] + [name for name, value in (("burst", burst), ("idle", idle)) if value is not None]
        if given:
            key, version = self.place("cpu", f"{f}.{given[0]}")
            if version == 1:
                self._cpu_v1(key, f, shares, quota, period, burst, rt_runtime, rt_period, idle)
            else:
                self._cpu_v2(key, f, shares, quota, period, burst, rt_runtime, rt_period, idle)
        for name in ("cpus", "mems"):
            if cpu.get(name):
                key, _ = self.place("cpuset", f"{f}.{name}")
                self.add(key, f"{f}.{name}", files.write, f"cpuset.{name}", cpu[name])

    def _cpu_v1(self, key, f, shares, quota, period, burst, rt_runtime, rt_period, idle):
        if rt_period:
            self.add(key, f"{f}.realtimePeriod", files.write, "cpu.rt_period_us", rt_period)
        if rt_runtime:
            self.add(key, f"{f}.realtimeRuntime", files.write, "cpu.rt_runtime_us", rt_runtime)
        if shares:
            self.add(key, f"{f}.shares", v1.cpu_shares, shares)
        if quota or period:
            self.add(key, f"{f}.{'quota' if quota else 'period'}", v1.cfs, period, quota)
        if burst is not None:
            self.add(key, f"{f}.burst", files.write, "cpu.cfs_burst_us", burst)
        if idle is not None:
            self.add(key, f"{f}.idle", files.write, "cpu.idle", idle)

    def _cpu_v2(self, key, f, shares, quota, period, burst, rt_runtime, rt_period, idle):
        for name, value in (("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period)):
            if value:
                raise Failure(f"{f}.{name}: the cgroup v2 cpu controller has no realtime limits")
        if idle is not None:
            self.add(key, f"{f}.idle", files.write, "cpu.idle", idle)
        # An idle cgroup (SCHED_IDLE) has the kernel's lowest weight, and
        # the kernel refuses cpu.weight writes to it (EINVAL): the weight
        # from shares takes effect when cpu.idle is 0 again (written first).
        if shares and idle != 1:
            self.add(key, f"{f}.shares", files.write, "cpu.weight", shares_to_weight(shares))
        if quota or period:
            self.add(key, f"{f}.{'quota' if quota else 'period'}", files.write, "cpu.max", cpu_max(quota, period))
        if burst is not None:
            self.add(key, f"{f}.burst", files.write, "cpu.max.burst", burst)

    # -- pids, block I/O, huge pages, network ------------------------------------------------------
    def pids(self, pids):
        limit = (pids or {}).get("limit") or 0
        if not limit:
            return
        key, _ = self.place("pids", f"{FIELD}.pids.limit")
        self.add(key, f"{FIELD}.pids.limit", files.write, "pids.max", "max" if limit < 0 else limit)

    def block_io(self, bio):
        if not bio:
            return
        f = f"{FIELD}.blockIO"
        weight, leaf = bio.get("weight") or 0, bio.get("leafWeight") or 0
        per_device = bio.get("weightDevice") or []
        throttles = [(name, files, v2key, bio.get(name) or []) for name, files, v2key in _THROTTLES]
        given = [n for n, v in (("weight", weight), ("leafWeight", leaf), ("weightDevice", per_device)) if v]
        given += [name for name, _, _, items in throttles if items]
        if not given:
            return
        key, version = self.place("blkio", f"{f}.{given[0]}", v2_name="io")
        if version == 1:
            self._block_io_v1(key, f, weight, leaf, per_device, throttles)
        else:
            self._block_io_v2(key, f, weight, leaf, per_device, throttles)

    def _block_io_v1(self, key, f, weight, leaf, per_device, throttles):
        if weight:
            self.add(key, f"{f}.weight", files.first_existing, ("blkio.bfq.weight", weight), ("blkio.weight", weight))
        if leaf:
            self.add(key, f"{f}.leafWeight", files.write, "blkio.leaf_weight", leaf)
        for i, dev in enumerate(per_device):
            number = f"{dev['major']}:{dev['minor']}"
            if dev.get("weight"):
                line = f"{number} {dev['weight']}"
                self.add(key, f"{f}.weightDevice[{i}].weight", files.first_existing,
                         ("blkio.bfq.weight_device", line), ("blkio.weight_device", line))
            if dev.get("leafWeight"):
                self.add(key, f"{f}.weightDevice[{i}].leafWeight", files.write, "blkio.leaf_weight_device",
                         f"{number} {dev['leafWeight']}")
        for name, v1_file, _, items in throttles:
            for i, dev in enumerate(items):
                self.add(key, f"{f}.{name}[{i}]", files.write, v1_file, f"{dev['major']}:{dev['minor']} {dev['rate']}")

    def _block_io_v2(self, key, f, weight, leaf, per_device, throttles):
        if leaf or any(dev.get("leafWeight") for dev in per_device):
            raise Failure(f"{f}.leafWeight: cgroup v2 has no leaf weights")
        if weight:
            self.add(key, f"{f}.weight", files.first_existing, ("io.bfq.weight", weight),
                     ("io.weight", blkio_to_io_weight(weight)))
        for i, dev in enumerate(per_device):
            if dev.get("weight"):
                number = f"{dev['major']}:{dev['minor']}"
                self.add(key, f"{f}.weightDevice[{i}].weight", files.first_existing,
                         ("io.bfq.weight", f"{number} {dev['weight']}"),
                         ("io.weight", f"{number} {blkio_to_io_weight(dev['weight'])}"))
        for name, _, v2key, items in throttles:
            for i, dev in enumerate(items):
                self.add(key, f"{f}.{name}[{i}]", files.write, "io.max",
                         f"{dev['major']}:{dev['minor']} {v2key}={dev['rate']}")

    def hugepages(self, limits):
        if not limits:
            return
        f = f"{FIELD}.hugepageLimits"
        key, version = self.place("hugetlb", f)
        sizes = host_page_sizes()
        for i, item in enumerate(limits):
            size = item["pageSize"]
            if size not in sizes:
                raise Failure(f"{f}[{i}].pageSize: {size!r} is not a huge page size of this host "
                              f"({', '.join(sizes) or 'it has none'})")
            name = f"hugetlb.{size}.limit_in_bytes" if version == 1 else f"hugetlb.{size}.max"
            self.add(key, f"{f}[{i}].limit", files.write, name, item["limit"])

    def network(self, net):
        if not net:
            return
        f = f"{FIELD}.network"
        if net.get("classID") is not None:
            key = self._v1_only("net_cls", f"{f}.classID")
            self.add(key, f"{f}.classID", files.write, "net_cls.classid", net["classID"])
        for i, prio in enumerate(net.get("priorities") or []):
            key = self._v1_only("net_prio", f"{f}.priorities")
            self.add(key, f"{f}.priorities[{i}]", files.write, "net_prio.ifpriomap",
                     f"{prio['name']} {prio['priority']}")

    def _v1_only(self, controller, field):
        found = self.where.holder(controller)
        if found is None or found[1] != 1:
            raise Failure(f"{field}: the {controller} controller is not available on this host "
                          "(it exists only in cgroup v1)")
        return found[0]

    # -- devices ----------------------------------------------------------------------------------
    def devices(self, entries, devices, previous):
        """One policy from the spec's rules (devicefilter.py), enforced by
        the v1 devices controller where the host has one, else by an eBPF
        program on the container's cgroup v2 directory. `previous` (update):
        the rules in force, for the v1 writes that change only what differs."""
        from . import devicefilter
        rules = devicefilter.sequence(entries, devices)
        target = devicefilter.emulate(rules)  # refuses a rule the kernel would ignore, on every host
        found = self.where.holder("devices")
        if found is not None and found[1] == 1:
            if previous is not None:
                rules = devicefilter.emulate(devicefilter.sequence(previous, devices)).transition(target)
            for rule in rules:
                self.add(found[0], rule.field, files.write, "devices.allow" if rule.allow else "devices.deny",
                         rule.line())
            return
        v2_dir = self.where.unified()
        if target.allows_all():
            if v2_dir is not None and self.update:
                self.add(v2_dir[0], f"{FIELD}.devices", devicefilter.uninstall)
            return
        if v2_dir is None:
            if entries:
                raise Failure(f"{FIELD}.devices: the devices controller is not available on this host")
            return
        try:
            prog = devicefilter.Program(target).load()
        except OSError as e:
            if not entries:
                return  # nothing asked, and nothing this host can enforce (rootless, no cgroup BPF)
            raise Failure(f"{FIELD}.devices: the cgroup v2 eBPF device filter cannot be loaded: "
                          f"{devicefilter.why_not(e)}") from None
        self.add(v2_dir[0], f"{FIELD}.devices", devicefilter.install, prog)

    # -- unified --------------------------------------------------------------------------------
    def unified(self, entries):
        if not entries:
            return
        v2_dir = self.where.unified()
        if v2_dir is None:
            raise Failure(f"{FIELD}.unified: needs cgroup v2, and this host has only cgroup v1")
        key, available = v2_dir
        for name, value in entries.items():
            field = f"{FIELD}.unified.{name}"
            if "/" in name or name in (".", ".."):
                raise Failure(f"{field}: not a file name of the cgroup")
            if name in _NOT_RESOURCES:
                raise Failure(f"{field}: {name} is the runtime's to manage, not a resource")
            controller = name.partition(".")[0]
            if controller in V2_CONTROLLERS:
                if controller not in available:
                    raise Failure(f"{field}: the {controller} controller is not in this host's cgroup v2 hierarchy")
                self.v2_controllers.add(controller)
            self.add(key, field, v2.write_existing, name, value)


# Fields where 0 means "not set" (see the module's docstring): an update
# giving 0 changes nothing, and the saved resources must say so too.
_ZERO_IS_UNSET = {"memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
                  "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"),
                  "pids": ("limit",), "blockIO": ("weight", "leafWeight")}


def without_unset(new):
    """`update`'s resources without the zeros that set nothing."""
    out = dict(new)
    for section, keys in _ZERO_IS_UNSET.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if not (k in keys and v == 0)}
    return out


def merge(old, new):
    """`update`'s resources over the container's: objects merge field by
    field, anything else (lists, numbers) is replaced."""
    out = dict(old or {})
    for key, value in (new or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
