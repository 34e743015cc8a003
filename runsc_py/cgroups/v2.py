"""cgroup v2: enabling controllers, the writes that need a check, freeze,
kill, the OOM notification and the statistics of the unified hierarchy.

Kernel docs: Documentation/admin-guide/cgroup-v2.rst. Where the kernel
notifies (cgroup.events, memory.events: "a value change in this file
generates a file modified event"), this module waits with poll(2) on the
file: kernfs reports POLLPRI once the file changed since it was last read,
so a change between a read and the poll is never missed."""

import errno
import os
import select
import time

from . import files

WAIT_TIMEOUT = 5.0
_CHANGED = select.POLLPRI | select.POLLERR


def write_if_exists(path, name, value):
    if files.exists(path, name):
        files.write(path, name, value)


def write_existing(path, name, value):
    """A `linux.resources.unified` entry: the file must be one the kernel
    made for this cgroup (no new file can be created in cgroupfs anyway,
    but the error says what is missing)."""
    if not files.exists(path, name):
        raise FileNotFoundError(errno.ENOENT, f"the container's cgroup has no file {name}", path)
    files.write(path, name, value)


def check_memory_usage(path, limit):
    """memory.checkBeforeUpdate: refuse a limit below the current usage
    instead of letting the kernel reclaim (and maybe OOM-kill) to meet it."""
    usage = files.read_uint(path, "memory.current")
    if limit != -1 and usage > limit:
        raise OSError(errno.EBUSY, f"the cgroup already uses {usage} bytes, more than {limit}",
                      f"{path}/memory.max")


def enable(mountpoint, leaf, required, optional=()):
    """Turn on controllers in cgroup.subtree_control of every ancestor of
    `leaf` below the mount point: a v2 controller reaches a cgroup only
    through all of its ancestors. `required` must succeed; `optional` (all
    controllers, on a pure v2 host: statistics need them) is best effort."""
    required, optional = set(required), set(optional)
    if not required and not optional:
        return
    parts = os.path.relpath(leaf, mountpoint).split("/")[:-1]
    level = mountpoint
    for part in [None] + parts:
        if part is not None:
            level = f"{level}/{part}"
        available = set(files.read(level, "cgroup.controllers").split())
        if required - available:
            raise FileNotFoundError(errno.ENOENT, f"controller(s) {', '.join(sorted(required - available))} "
                                    "not available", f"{level}/cgroup.controllers")
        enabled = set(files.read(level, "cgroup.subtree_control").split())
        # The required ones alone first: one write enables all of its
        # controllers or none. EBUSY here is the "no internal processes"
        # rule: a non-root cgroup with processes of its own gives no
        # controller to its children.
        todo = required - enabled
        if todo:
            files.write(level, "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(todo)))
        todo = (optional & available) - enabled - required
        if todo:
            try:
                files.write(level, "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(todo)))
            except OSError:
                pass  # statistics of those controllers will be missing, nothing else


# -- events files --------------------------------------------------------------------------------

def wait_for(path, name, key, value, timeout=WAIT_TIMEOUT):
    """Wait until `key value` appears in the events file `name`; True if it did in time."""
    fd = os.open(f"{path}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, _CHANGED)
        deadline = time.monotonic() + timeout
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            if files.key_values(os.read(fd, 4096).decode()).get(key) == value:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(int(left * 1000) + 1)
    finally:
        os.close(fd)


def freeze(path, timeout=WAIT_TIMEOUT):
    """cgroup.freeze 1, then wait for cgroup.events "frozen 1"."""
    files.write(path, "cgroup.freeze", "1")
    if not wait_for(path, "cgroup.events", "frozen", 1, timeout):
        files.write(path, "cgroup.freeze", "0")
        raise TimeoutError(errno.ETIMEDOUT, f"the cgroup did not freeze within {timeout:g}s",
                           f"{path}/cgroup.freeze")


def thaw(path, timeout=WAIT_TIMEOUT):
    files.write(path, "cgroup.freeze", "0")
    wait_for(path, "cgroup.events", "frozen", 0, timeout)


def frozen(path):
    return (files.read_optional(path, "cgroup.freeze") or "0").strip() == "1"


def can_kill(path):
    return files.exists(path, "cgroup.kill")


def kill(path):
    """SIGKILL every process of the cgroup and its descendants at once
    (cgroup.kill, Linux 5.14); frozen ones die too."""
    files.write(path, "cgroup.kill", "1")


def wait_empty(path, timeout=WAIT_TIMEOUT):
    return wait_for(path, "cgroup.events", "populated", 0, timeout)


class OomWatch:
    """OOM kills in a v2 memory cgroup: the oom_kill counter of
    memory.events, watched with poll(2)."""

    mask = _CHANGED

    def __init__(self, path):
        self.fd = os.open(f"{path}/memory.events", os.O_RDONLY | os.O_CLOEXEC)
        self.seen = self._count()

    def _count(self):
        os.lseek(self.fd, 0, os.SEEK_SET)
        return files.key_values(os.read(self.fd, 4096).decode()).get("oom_kill", 0)

    def fileno(self):
        return self.fd

    def events(self):
        count = self._count()
        new, self.seen = count - self.seen, count
        return max(new, 0)

    def close(self):
        os.close(self.fd)


# -- statistics -------------------------------------------------------------------------------------

def cpu_usage(path):
    stat = files.key_values(files.read(path, "cpu.stat"))
    return {"total": stat.get("usage_usec", 0) * 1000, "kernel": stat.get("system_usec", 0) * 1000,
            "user": stat.get("user_usec", 0) * 1000}


def cpu_throttling(path):
    stat = files.key_values(files.read(path, "cpu.stat"))
    return {"periods": stat.get("nr_periods", 0), "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_usec", 0) * 1000}


def cpuset(path):
    from .resources import parse_cpu_list
    return {"cpus": parse_cpu_list(files.read_optional(path, "cpuset.cpus.effective") or ""),
            "mems": parse_cpu_list(files.read_optional(path, "cpuset.mems.effective") or "")}


def memory(path):
    """runc's v2 mapping: usage from memory.current/max, and swap reported
    as memory+swap like v1 does."""
    raw = files.key_values(files.read(path, "memory.stat"))
    events = files.key_values(files.read_optional(path, "memory.events") or "")
    usage = {"limit": files.read_uint(path, "memory.max"), "usage": files.read_uint(path, "memory.current"),
             "max": files.read_uint(path, "memory.peak"), "failcnt": events.get("max", 0)}
    swap = {"limit": files.read_uint(path, "memory.swap.max"), "usage": files.read_uint(path, "memory.swap.current"),
            "max": files.read_uint(path, "memory.swap.peak"), "failcnt": 0}
    swap["usage"] += usage["usage"]
    if swap["limit"] != (1 << 64) - 1:
        swap["limit"] += usage["limit"]
    return {"cache": raw.get("file", 0), "usage": usage, "swap": swap,
            "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}, "raw": raw}


def pids(path):
    text = (files.read_optional(path, "pids.max") or "").strip()
    return {"current": files.read_uint(path, "pids.current"), "limit": 0 if text in ("", "max") else int(text)}


def blkio(path):
    """io.stat: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...` per device."""
    service_bytes, serviced = [], []
    for line in (files.read_optional(path, "io.stat") or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        values = dict(f.partition("=")[::2] for f in fields[1:])
        device = {"major": int(major), "minor": int(minor)}
        service_bytes += [dict(device, op="Read", value=int(values.get("rbytes", 0))),
                          dict(device, op="Write", value=int(values.get("wbytes", 0)))]
        serviced += [dict(device, op="Read", value=int(values.get("rios", 0))),
                     dict(device, op="Write", value=int(values.get("wios", 0)))]
    out = {}
    if service_bytes:
        out["ioServiceBytesRecursive"] = service_bytes
        out["ioServicedRecursive"] = serviced
    return out


def hugetlb(path, sizes):
    out = {}
    for size in sizes:
        current = files.read_optional(path, f"hugetlb.{size}.current")
        if current is None:
            continue
        events = files.key_values(files.read_optional(path, f"hugetlb.{size}.events") or "")
        out[size] = {"usage": files.to_uint(current), "failcnt": events.get("max", 0)}
    return out
