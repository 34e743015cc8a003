"""Display the processes running inside a container."""

from .params import Arg, Opt

STOP_AT_POSITIONAL = True
OPTIONS = (Opt(("--format", "-f"), "format", default="table", choices=("table", "json"),
               help="table or json"),)
ARGS = (Arg("id"), Arg("ps_args", required=False, variadic=True))


def run(g, id, format, ps_args):
    from .. import jsonio
    import sys
    from ..container import load
    from ..container.processes import container_pids
    from ..errors import NotRunning
    container = load(g.root, id)
    if container.status == "stopped":
        raise NotRunning(id)
    pids = sorted(container_pids(container))
    if format == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return
    from ..container.processes import ps_table
    sys.stdout.write(ps_table(pids, list(ps_args) or ["-ef"]))
