"""Update the resource constraints of a container."""

from .params import Arg, Opt

OPTIONS = (
    Opt(("--resources", "-r"), "resources",
        help="path to a JSON file of linux.resources, - for stdin (the other options are then ignored)"),
    Opt(("--blkio-weight",), "blkio_weight", type=int, help="block I/O weight, 10 to 1000"),
    Opt(("--cpu-period",), "cpu_period", type=int, help="CPU CFS period in microseconds"),
    Opt(("--cpu-quota",), "cpu_quota", type=int, help="CPU CFS quota in microseconds per period"),
    Opt(("--cpu-burst",), "cpu_burst", type=int, help="CPU CFS burst in microseconds"),
    Opt(("--cpu-share",), "cpu_share", type=int, help="CPU shares (relative weight)"),
    Opt(("--cpu-rt-period",), "cpu_rt_period", type=int, help="CPU realtime period in microseconds"),
    Opt(("--cpu-rt-runtime",), "cpu_rt_runtime", type=int, help="CPU realtime runtime in microseconds"),
    Opt(("--cpu-idle",), "cpu_idle", type=int, help="1: SCHED_IDLE for the cgroup, 0: default"),
    Opt(("--cpuset-cpus",), "cpuset_cpus", help="CPUs to use (0-3,7)"),
    Opt(("--cpuset-mems",), "cpuset_mems", help="memory nodes to use"),
    Opt(("--memory",), "memory", help="memory limit (bytes, or 100M, 1G; -1 for none)"),
    Opt(("--memory-reservation",), "memory_reservation", help="memory soft limit"),
    Opt(("--memory-swap",), "memory_swap", help="memory+swap limit; -1 for unlimited swap"),
    Opt(("--kernel-memory",), "kernel_memory", help="(obsolete, ignored)"),
    Opt(("--kernel-memory-tcp",), "kernel_memory_tcp", help="(obsolete, ignored)"),
    Opt(("--pids-limit",), "pids_limit", type=int, help="maximum number of pids (-1 for none)"),
    Opt(("--l3-cache-schema",), "l3_cache_schema", help="Intel RDT L3 cache schema (not supported)"),
    Opt(("--mem-bw-schema",), "mem_bw_schema", help="Intel RDT memory bandwidth schema (not supported)"),
)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, resources, **opts):
    from ..container.update import update
    from ..errors import Unsupported
    if opts["l3_cache_schema"] or opts["mem_bw_schema"]:
        raise Unsupported("Intel RDT (--l3-cache-schema, --mem-bw-schema)")
    update(g.root, id, _read_resources(resources) if resources else resources_from_flags(opts))


def _read_resources(path):
    import json
    import sys
    from ..errors import Failure, os_error_text
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise Failure(f"--resources: {os_error_text(e)}") from None
    try:
        return json.loads(data)
    except ValueError as e:
        raise Failure(f"--resources: not JSON: {e}") from None


def resources_from_flags(opts):
    """linux.resources from runc's flags; only what was given."""
    from ..cgroups.resources import ram_in_bytes
    from ..errors import Failure, log
    out = {}

    def put(section, key, value):
        if value is not None:
            out.setdefault(section, {})[key] = value

    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"), ("memory_swap", "swap")):
        text = opts[flag]
        if text is None:
            continue
        try:
            put("memory", key, -1 if text.strip() == "-1" else ram_in_bytes(text))
        except ValueError as e:
            raise Failure(f"--{flag.replace('_', '-')}: {e}") from None
    for flag, key in (("cpu_share", "shares"), ("cpu_quota", "quota"), ("cpu_period", "period"),
                      ("cpu_burst", "burst"), ("cpu_rt_runtime", "realtimeRuntime"),
                      ("cpu_rt_period", "realtimePeriod"), ("cpu_idle", "idle"),
                      ("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        put("cpu", key, opts[flag])
    put("blockIO", "weight", opts["blkio_weight"])
    put("pids", "limit", opts["pids_limit"])
    for flag in ("kernel_memory", "kernel_memory_tcp"):
        if opts[flag] is not None:
            log.warning(f"--{flag.replace('_', '-')} is ignored: kernel memory limits are obsolete")
    return out
