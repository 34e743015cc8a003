"""Wait for the container's process to exit and print its exit status."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)


def run(g, id):
    from .. import jsonio
    import sys
    from ..container.wait import wait
    status = wait(g.root, id)
    sys.stdout.write(jsonio.dumps({"id": id, "exitStatus": status}) + "\n")
