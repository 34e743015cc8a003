"""Display container events and resource usage statistics."""

from .params import Arg, Opt

OPTIONS = (
    Opt(("--stats",), "stats", flag=True, help="print one set of statistics and exit"),
    Opt(("--interval",), "interval", default="5s", help="statistics interval (a duration: 5s, 500ms)"),
)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, stats, interval):
    from ..container.events import events, parse_duration
    events(g.root, id, stats_only=stats, interval=parse_duration(interval))
