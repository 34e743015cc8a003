"""Update the resource constraints of a container."""

from .params import Arg, Opt

OPTIONS = (
    Opt(("--resources", "-r"), "resources", help="path to a JSON file of linux.resources, - for stdin"),
    Opt(("--blkio-weight",), "blkio_weight", type=int),
    Opt(("--cpu-period",), "cpu_period", type=int),
    Opt(("--cpu-quota",), "cpu_quota", type=int),
    Opt(("--cpu-share",), "cpu_share", type=int),
    Opt(("--cpu-rt-period",), "cpu_rt_period", type=int),
    Opt(("--cpu-rt-runtime",), "cpu_rt_runtime", type=int),
    Opt(("--cpuset-cpus",), "cpuset_cpus"),
    Opt(("--cpuset-mems",), "cpuset_mems"),
    Opt(("--memory",), "memory"),
    Opt(("--memory-reservation",), "memory_reservation"),
    Opt(("--memory-swap",), "memory_swap"),
    Opt(("--pids-limit",), "pids_limit", type=int),
    Opt(("--l3-cache-schema",), "l3_cache_schema"),
    Opt(("--mem-bw-schema",), "mem_bw_schema"),
)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, **opts):
    from ._notyet import not_supported_yet
    not_supported_yet("update")
