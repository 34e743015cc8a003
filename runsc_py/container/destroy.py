"""destroy: the one teardown path, shared by delete, delete --force, a
failed start and `run`'s cleanup.

Idempotent and best effort, in this order: lock -> stop the sandbox
(SIGKILL; PID 1's death kills its namespace; bounded pidfd wait) -> kill
the gofer (ESRCH is success) -> remove `.state` then `.lock` -> return every
error joined. Only the caller whose call removed the record reports
`removed`, so work that must happen once (poststop hooks) happens once."""

import signal

from .. import status as st
from ..errors import Failure, NotExist
from ..linux import proc
from ..state_file import StateFile
from . import Container, faults

KILL_TIMEOUT = 10.0


class CannotDelete(Failure):
    pass


def destroy(root, cid, force=False) -> bool:
    """Returns True if this call removed the container."""
    sf = StateFile.find(root, cid)
    sf.lock_for_destroy()
    try:
        container = _load_for_destroy(sf, force)
        if container is not None and not force and not st.can_delete(container.status):
            raise CannotDelete(f'cannot delete container "{cid}" that is {container.status}: '
                               f"stop it first or use --force")
        errors = []
        poststop = _poststop_hooks(sf) if container is not None else ()
        if container is not None:
            _stop(container, errors)
            container.record["status"] = st.STOPPED
        faults.point("delete:after-kill")
        removed = sf.destroy()
        faults.point("delete:after-state-removed")
    finally:
        sf.unlock()
    if removed and poststop:
        # Only the caller that removed the record gets here: exactly once.
        from ..errors import log
        from ..hooks import run_poststop
        state = container.oci_state()
        state["pid"] = 0
        run_poststop(poststop, state, log)
    if removed:
        errors += _after_removal(root, sf)
    if errors:
        raise Failure("; ".join(errors))
    return removed


def _after_removal(root, sf):
    """Sandbox-wide work, done once this container's own lock is released
    and its record gone, so no scan sees it and no two locks are held: a
    member's leaving re-adjusts the pod sandbox's OOM score; a sandbox's
    going takes every member of the pod with it (each with its own lock
    and poststop hooks)."""
    from ..state_file import list_records
    from . import pod
    if sf.sid != sf.cid:
        pod.adjust_sandbox_oom(root, sf.sid)
        return []
    errors = []
    for member, _msf, _record in list_records(root, sandbox_id=sf.cid):
        try:
            destroy(root, member, force=True)
        except NotExist:
            continue  # destroyed meanwhile by someone else
        except Failure as e:
            errors.append(str(e))
    return errors


def _poststop_hooks(sf):
    from ..hooks import hooks_of
    try:
        return hooks_of(sf.read_spec()).poststop
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def _load_for_destroy(sf, force):
    try:
        return Container(sf, sf.load())
    except NotExist:
        return None  # only a lock file: a create that was killed before saving
    except Failure:
        if not force:
            raise
        return None  # corrupt or foreign record: --force removes the files


def _stop(container, errors):
    for role in ("sandbox", "gofer"):
        ident = container.record.get(role) or {}
        pid, start = ident.get("pid"), ident.get("startTime")
        if not pid:
            continue
        if not proc.kill_and_wait(pid, start, signal.SIGKILL, KILL_TIMEOUT):
            errors.append(f"{role} process {pid} did not exit within {KILL_TIMEOUT:g}s of SIGKILL")
