"""Print the OCI state of a container as JSON."""

from .params import Arg

OPTIONS = ()
ARGS = (Arg("id"),)


def run(g, id):
    import sys
    from .. import jsonio
    from ..container import load
    container = load(g.root, id)
    if container.stale:
        _persist_stopped(container)
    sys.stdout.write(jsonio.dumps_indented(container.oci_state()) + "\n")


def _persist_stopped(container):
    """A sandbox found dead is recorded as stopped when the lock is free;
    `state` never waits for a lock and works on a read-only root."""
    from ..errors import Failure
    sf = container.sf
    try:
        if not sf.try_lock():
            return
    except Failure:
        return
    try:
        from ..container import Container
        Container(sf, sf.load()).persist_if_stale()
    except Failure:
        pass
    finally:
        sf.unlock()
