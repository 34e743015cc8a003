"""Display container events and resource usage statistics."""

from .params import Arg, Opt

OPTIONS = (
    Opt(("--stats",), "stats", flag=True, help="print one set of statistics and exit"),
    Opt(("--interval",), "interval", default="5s", help="statistics interval"),
)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, stats, interval):
    from ._notyet import not_supported_yet
    not_supported_yet("events")
