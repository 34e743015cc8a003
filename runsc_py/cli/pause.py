"""Pause every process in the container."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id):
    from ._notyet import not_supported_yet
    not_supported_yet("pause")
