"""Delete a container and everything it holds."""

from .params import Arg, Opt

OPTIONS = (Opt(("--force", "-f"), "force", flag=True, help="kill a running container first; no error if missing"),)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, force):
    from ..container.destroy import destroy
    from ..errors import NotExist
    try:
        destroy(g.root, id, force=force)
    except NotExist:
        if not force:
            raise
