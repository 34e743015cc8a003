"""Resume every process in the container."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id):
    from ..container.pause import resume
    resume(g.root, id)
