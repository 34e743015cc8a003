"""Send a signal (default SIGTERM) to the container's process."""

from .params import Arg, Opt

OPTIONS = (Opt(("--all", "-a"), "all", flag=True, help="signal every process of the container"),)
ARGS = (Arg("id"), Arg("signal", required=False, default="SIGTERM"))


def run(g, id, signal, all):
    from ..container.kill import kill, parse_signal
    kill(g.root, id, parse_signal(signal), all_processes=all)
