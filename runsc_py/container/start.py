"""start: run the container's process.

runtime-spec runtime.md: "This operation MUST generate an error if the
container is not in the created state" and "MUST run the user-specified
program as specified by process"."""

import os

from .. import status as st
from ..errors import Failure
from . import control, faults, load_locked


def start(root, cid):
    """A failure to start (exec error, failing startContainer hook)
    destroys the container: the command fails and nothing is left
    (runtime.md: "If any startContainer hook fails, the runtime MUST
    generate an error, stop the container, and continue the lifecycle at
    step 12"). A failing poststart hook is only a warning (`_poststart`)."""
    container = load_locked(root, cid)
    try:
        if not st.can_start(container.status):
            container.persist_if_stale()
            raise Failure(f'container "{cid}" cannot be started: it is {container.status}, not created')
        fds = []
        reply = control.request(container, _start_message(container), timeout=30, fds_out=fds)
        faults.point("start:after-fork")
        error = reply.get("error")
        if error is None:
            container.set_status(st.RUNNING)
            try:
                container.sf.save_locked(container.record)
            except Failure as e:
                error = str(e)  # the workload runs, but the root (full) cannot say so: undo it
            if fds and error is None:
                error = _hand_over_listener(container, reply["pid"], fds.pop())
        for fd in fds:
            os.close(fd)
    finally:
        container.sf.unlock()
    if error is None:
        _poststart(container)
    if error is not None:
        from .destroy import destroy
        destroy(root, cid, force=True)
        raise Failure(error)
    if container.sf.sid != cid:
        from .pod import adjust_sandbox_oom
        adjust_sandbox_oom(root, container.sf.sid)


def _start_message(container):
    """The sandbox needs the state only for startContainer hooks: without
    them the message stays small whatever the annotations (with them,
    create checked that the state fits one message: specs.config MAX_MESSAGE)."""
    from ..hooks import may_have
    if may_have(container.record, "startContainer"):
        return {"op": "start", "state": container.oci_state()}
    return {"op": "start"}


def _hand_over_listener(container, pid, fd):
    """The seccomp listener fd goes to linux.seccomp.listenerPath. `pid`:
    the workload's host pid, as the sandbox (outside the container's pid
    namespace) replies it."""
    from .listener import send_listener
    try:
        send_listener(container.sf.read_spec()["linux"]["seccomp"], fd, pid, container.oci_state())
    except Failure as e:
        return str(e)
    return None


def _poststart(container):
    """runtime-spec config.md: poststart hooks run "after the user-specified
    process is executed but before the start operation returns"; runtime.md
    (up to v1.2.1, the version this runtime writes): "If any poststart hook
    fails, the runtime MUST log a warning, but the remaining hooks and
    lifecycle continue as if the hook had succeeded"."""
    from ..errors import log
    from ..hooks import hooks_of, may_have, run_hooks_warning
    if not may_have(container.record, "poststart"):
        return
    try:
        hooks = hooks_of(container.sf.read_spec()).poststart
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning(f"poststart hooks not run: the spec snapshot of container "
                    f'"{container.cid}" is unreadable: {e}')
        return
    run_hooks_warning("poststart", hooks, container.oci_state(), log)
