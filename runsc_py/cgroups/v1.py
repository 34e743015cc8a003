"""cgroup v1: the writes that need more than one file, the freezer, the
OOM notification and the statistics of v1 controllers.

Every function takes the container's directory in the hierarchy that holds
the controller (kernel docs: Documentation/admin-guide/cgroup-v1/)."""

import errno
import os
import time

from . import files

FREEZE_TIMEOUT = 5.0


def memory_and_swap(path, limit, swap):
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes (memory+swap).

    The kernel refuses a memory limit above memory+swap, so the order
    depends on the direction of the change; like runc, an unlimited memory
    with no swap given makes swap unlimited too."""
    has_swap = files.exists(path, "memory.memsw.limit_in_bytes")
    if limit == -1 and swap == 0 and has_swap:
        swap = -1
    if swap and not has_swap:
        raise FileNotFoundError(errno.ENOENT, "swap accounting is off in this kernel "
                                "(no memory.memsw.limit_in_bytes)", path)
    if limit and swap:
        current = files.read_uint(path, "memory.limit_in_bytes")
        if swap == -1 or current < swap:
            _set_limit(path, "memory.memsw.limit_in_bytes", swap)
            _set_limit(path, "memory.limit_in_bytes", limit)
            return
    if limit:
        _set_limit(path, "memory.limit_in_bytes", limit)
    if swap:
        _set_limit(path, "memory.memsw.limit_in_bytes", swap)


def _set_limit(path, name, value):
    try:
        files.write(path, name, value)
    except OSError as e:
        if e.errno == errno.EBUSY:
            usage = files.read_uint(path, "memory.usage_in_bytes")
            raise OSError(errno.EBUSY, f"the cgroup already uses {usage} bytes, more than {value}",
                          f"{path}/{name}") from None
        raise


def cpu_shares(path, shares):
    """The kernel clamps cpu.shares to [2, 262144] silently; a value it
    changed is an error (runc's check)."""
    files.write(path, "cpu.shares", shares)
    actual = files.read_uint(path, "cpu.shares")
    if actual != shares:
        raise OSError(errno.EINVAL, f"the kernel allows cpu.shares {actual}, not {shares}", f"{path}/cpu.shares")


def cfs(path, period, quota):
    """cpu.cfs_period_us then cpu.cfs_quota_us. A period smaller than the
    current one can be refused while the old quota stands (EINVAL against
    the parent's limit): then the quota goes first (runc's order)."""
    retry_period = False
    if period:
        try:
            files.write(path, "cpu.cfs_period_us", period)
        except OSError as e:
            if e.errno != errno.EINVAL or not quota:
                raise
            retry_period = True
    if quota:
        files.write(path, "cpu.cfs_quota_us", quota)
    if retry_period:
        files.write(path, "cpu.cfs_period_us", period)


def copy_cpuset(path, parent):
    """A new v1 cpuset cgroup starts with no cpus and no mems, and no task
    can join it until it has both: it gets its parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not files.read(path, name).strip():
            files.write(path, name, files.read(parent, name).strip())


# -- freezer ------------------------------------------------------------------------------

def freeze(path, timeout=FREEZE_TIMEOUT):
    """freezer.state FROZEN, waiting until the kernel reports it. A cgroup
    whose tasks keep forking can stay FREEZING; writing FROZEN again
    retries, and the wait is bounded (the kernel does not notify the end of
    a v1 freeze, hence bounded polling with backoff)."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        files.write(path, "freezer.state", "FROZEN")
        state = files.read(path, "freezer.state").strip()
        if state == "FROZEN":
            return
        if time.monotonic() > deadline:
            files.write(path, "freezer.state", "THAWED")
            raise TimeoutError(errno.ETIMEDOUT, f"the freezer did not settle within {timeout:g}s (state {state})",
                               f"{path}/freezer.state")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def thaw(path):
    files.write(path, "freezer.state", "THAWED")


def frozen(path):
    return files.read(path, "freezer.state").strip() != "THAWED"


# -- OOM notification -----------------------------------------------------------------------

class OomWatch:
    """OOM events of a v1 memory cgroup: an eventfd registered with
    cgroup.event_control for memory.oom_control (kernel docs, cgroup-v1
    memory.rst, "Memory thresholds" and "OOM Control"); the kernel signals
    it when the cgroup hits the OOM condition."""

    mask = 0x001  # POLLIN

    def __init__(self, path):
        self.path = path
        self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self.control = os.open(f"{path}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            files.write(path, "cgroup.event_control", f"{self.efd} {self.control}")
        except BaseException:
            os.close(self.efd)
            raise

    def fileno(self):
        return self.efd

    def events(self):
        """How many OOM events arrived. The eventfd also fires when the
        cgroup is removed, which is no OOM."""
        try:
            count = os.eventfd_read(self.efd)
        except BlockingIOError:
            return 0
        return count if os.path.exists(f"{self.path}/cgroup.event_control") else 0

    def close(self):
        os.close(self.efd)
        os.close(self.control)


# -- statistics (the shape of runc's `events` types) ---------------------------------------------

def _ticks_to_ns(ticks):
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cpu_usage(path):
    """cpuacct: total and per-cpu usage in ns, user and kernel time."""
    usage = {"total": files.read_uint(path, "cpuacct.usage")}
    percpu = files.read_optional(path, "cpuacct.usage_percpu")
    if percpu:
        usage["percpu"] = [int(v) for v in percpu.split()]
    table = files.read_optional(path, "cpuacct.usage_all")
    if table:
        rows = [line.split() for line in table.splitlines()[1:] if line.strip()]
        usage["percpu_kernel"] = [int(row[2]) for row in rows]
        usage["percpu_user"] = [int(row[1]) for row in rows]
    stat = files.key_values(files.read_optional(path, "cpuacct.stat") or "")
    usage["kernel"] = _ticks_to_ns(stat.get("system", 0))
    usage["user"] = _ticks_to_ns(stat.get("user", 0))
    return usage


def cpu_throttling(path):
    stat = files.key_values(files.read_optional(path, "cpu.stat") or "")
    return {"periods": stat.get("nr_periods", 0), "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_time", 0)}


def cpuset(path):
    from .resources import parse_cpu_list
    out = {"cpus": parse_cpu_list(files.read(path, "cpuset.cpus")),
           "mems": parse_cpu_list(files.read(path, "cpuset.mems"))}
    for name in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                 "memory_spread_slab", "memory_pressure", "sched_load_balance"):
        out[name] = files.read_uint(path, f"cpuset.{name}")
    text = files.read_optional(path, "cpuset.sched_relax_domain_level")
    out["sched_relax_domain_level"] = int(text) if text and text.strip() else 0
    return out


def _memory_entry(path, prefix):
    return {"limit": files.read_uint(path, f"{prefix}.limit_in_bytes"),
            "usage": files.read_uint(path, f"{prefix}.usage_in_bytes"),
            "max": files.read_uint(path, f"{prefix}.max_usage_in_bytes"),
            "failcnt": files.read_uint(path, f"{prefix}.failcnt")}


def memory(path):
    raw = files.key_values(files.read(path, "memory.stat"))
    return {"cache": raw.get("cache", 0), "usage": _memory_entry(path, "memory"),
            "swap": _memory_entry(path, "memory.memsw"), "kernel": _memory_entry(path, "memory.kmem"),
            "kernelTCP": _memory_entry(path, "memory.kmem.tcp"), "raw": raw}


def pids(path):
    return {"current": files.read_uint(path, "pids.current"), "limit": _pids_limit(path)}


def _pids_limit(path):
    text = (files.read_optional(path, "pids.max") or "").strip()
    return 0 if text in ("", "max") else int(text)  # runc: 0 is "no limit"


# blkio statistics: the CFQ files if this kernel has them, else BFQ's, else
# the throttling layer's (which counts every I/O of the cgroup).
_BLKIO_STATS = {
    "ioServiceBytesRecursive": ("blkio.io_service_bytes_recursive", "blkio.bfq.io_service_bytes_recursive",
                                "blkio.throttle.io_service_bytes_recursive"),
    "ioServicedRecursive": ("blkio.io_serviced_recursive", "blkio.bfq.io_serviced_recursive",
                            "blkio.throttle.io_serviced_recursive"),
    "ioQueueRecursive": ("blkio.io_queued_recursive",),
    "ioServiceTimeRecursive": ("blkio.io_service_time_recursive",),
    "ioWaitTimeRecursive": ("blkio.io_wait_time_recursive",),
    "ioMergedRecursive": ("blkio.io_merged_recursive",),
    "ioTimeRecursive": ("blkio.time_recursive",),
    "sectorsRecursive": ("blkio.sectors_recursive",),
}


def blkio(path):
    out = {}
    for key, names in _BLKIO_STATS.items():
        for name in names:
            text = files.read_optional(path, name)
            if text is not None:
                out[key] = _blkio_entries(text)
                break
    return out


def _blkio_entries(text):
    """`8:0 Read 4096` lines; `8:0 4096` (no op) in some files; `Total N` is dropped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entry = {"major": int(major), "minor": int(minor)}
        if len(fields) == 3:
            entry["op"] = fields[1]
        entry["value"] = int(fields[-1])
        entries.append(entry)
    return entries


def hugetlb(path, sizes):
    return {size: {"usage": files.read_uint(path, f"hugetlb.{size}.usage_in_bytes"),
                   "max": files.read_uint(path, f"hugetlb.{size}.max_usage_in_bytes"),
                   "failcnt": files.read_uint(path, f"hugetlb.{size}.failcnt")}
            for size in sizes if files.exists(path, f"hugetlb.{size}.usage_in_bytes")}
