"""Pause every process in the container."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id):
    from ..container.pause import pause
    pause(g.root, id)
