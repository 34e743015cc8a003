"""Start the process of a created container."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)


def run(g, id):
    from ..container.start import start
    start(g.root, id)
