"""A container's statistics in the JSON shape of `runc events` (runc's
types/events.go), so what parses runc's output parses ours.

Each section is read from the hierarchy holding its controller. runc
encodes with Go's `omitempty`: zero numbers and empty lists of those
fields are left out, which `_omit` does here for the same fields."""

from . import files, resources, v1, v2


def _omit(entry, *keys):
    for key in keys:
        if not entry.get(key):
            entry.pop(key, None)
    return entry


def collect(cg):
    return {"cpu": _cpu(cg), "cpuset": _cpuset(cg), "memory": _memory(cg), "pids": _pids(cg),
            "blkio": _blkio(cg), "hugetlb": _hugetlb(cg), "intel_rdt": {}, "network_interfaces": None}


def _v2_dir(cg):
    d = cg.dirs.get("unified")
    return d.path if d is not None else None


def _cpu(cg):
    usage, throttling = {"kernel": 0, "user": 0}, {}
    acct = cg.where("cpuacct")
    v2_path = _v2_dir(cg)
    if acct is not None:
        usage = v1.cpu_usage(acct[1])
    elif v2_path is not None and files.exists(v2_path, "cpu.stat"):
        usage = v2.cpu_usage(v2_path)  # usage is in cgroup v2's core cpu.stat
    cpu = cg.where("cpu")
    if cpu is not None:
        throttling = (v1 if cpu[0] == 1 else v2).cpu_throttling(cpu[1])
    return {"usage": _omit(usage, "total", "percpu", "percpu_kernel", "percpu_user"),
            "throttling": _omit(throttling, "periods", "throttledPeriods", "throttledTime")}


def _cpuset(cg):
    found = cg.where("cpuset")
    if found is None:
        return {}
    out = (v1 if found[0] == 1 else v2).cpuset(found[1])
    return _omit(out, "cpus", "mems")


def _memory_entry(entry):
    return _omit(dict(entry), "usage", "max")


def _memory(cg):
    found = cg.where("memory")
    if found is None:
        return {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}}
    mem = (v1 if found[0] == 1 else v2).memory(found[1])
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        mem[key] = _memory_entry(mem[key])
    return _omit(mem, "cache", "raw")


def _pids(cg):
    found = cg.where("pids")
    if found is None:
        return {}
    return _omit((v1 if found[0] == 1 else v2).pids(found[1]), "current", "limit")


def _blkio(cg):
    found = cg.where("blkio")
    if found is None:
        return {}
    out = (v1 if found[0] == 1 else v2).blkio(found[1])
    for key, entries in list(out.items()):
        out[key] = [_omit(e, "major", "minor", "op", "value") for e in entries]
    return _omit(out, *list(out))


def _hugetlb(cg):
    found = cg.where("hugetlb")
    if found is None:
        return {}
    sizes = resources.host_page_sizes()
    out = (v1 if found[0] == 1 else v2).hugetlb(found[1], sizes)
    return {size: _omit(entry, "usage", "max") for size, entry in out.items()}
