"""start: run the container's process.

runtime-spec runtime.md: "This operation MUST generate an error if the
container is not in the created state" and "MUST run the user-specified
program as specified by process"."""

from .. import status as st
from ..errors import Failure
from . import control, faults, load_locked


def start(root, cid):
    container = load_locked(root, cid)
    try:
        if not st.can_start(container.status):
            container.persist_if_stale()
            raise Failure(f'container "{cid}" cannot be started: it is {container.status}, not created')
        reply = control.request(container, {"op": "start"}, timeout=30)
        faults.point("start:after-fork")
        if "error" in reply:
            container.set_status(st.STOPPED)
            container.sf.save_locked(container.record)
            raise Failure(reply["error"])
        container.set_status(st.RUNNING)
        container.sf.save_locked(container.record)
    finally:
        container.sf.unlock()
