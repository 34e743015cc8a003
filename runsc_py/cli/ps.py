"""Display the processes running inside a container."""

from .params import Arg, Opt

STOP_AT_POSITIONAL = True
OPTIONS = (Opt(("--format", "-f"), "format", default="table", choices=("table", "json"),
               help="table or json"),)
ARGS = (Arg("id"), Arg("ps_args", required=False, variadic=True))


def run(g, id, format, ps_args):
    from ._notyet import not_supported_yet
    not_supported_yet("ps")
