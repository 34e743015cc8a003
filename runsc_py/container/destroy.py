"""destroy: the one teardown path, shared by delete, delete --force, a
failed start and `run`'s cleanup.

Idempotent and best effort, in this order: lock -> stop the sandbox
(SIGKILL; PID 1's death kills its namespace; bounded pidfd wait; a paused
container is killed and thawed first) -> kill the gofer (ESRCH is
success) -> remove the cgroups its create made -> remove `.state` then
`.lock` -> return every error joined. Only the caller whose call removed
the record reports `removed`, so work that must happen once (poststop
hooks) happens once. A record that cannot be read (empty, truncated,
garbage, the wrong shape) gives no pid: `delete --force` then finds the
processes from the cgroup journal and the control socket (unrecorded.py)."""

import os

from .. import status as st
from ..errors import Failure, NotExist
from ..linux import proc, signals
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
        container, unreadable = _load_for_destroy(sf, force)
        if container is not None and not force and not st.can_delete(container.status):
            raise CannotDelete(f'cannot delete container "{cid}" that is {container.status}: '
                               f"stop it first or use --force")
        errors = []
        poststop = _poststop_hooks(sf, container.record) if container is not None else ()
        cgroup = _cgroup_of(sf, container)
        if container is not None:
            if cgroup is not None and cgroup.frozen():
                cgroup.kill_frozen()  # a paused container: frozen tasks cannot be waited for
            _stop(container, errors)
            container.record["status"] = st.STOPPED
        elif unreadable is not None:
            from .unrecorded import find_and_kill
            cgroup, errors = find_and_kill(sf, cgroup, unreadable, KILL_TIMEOUT)
        if cgroup is not None:
            errors += cgroup.remove()
        _unlink(sf.path("cgroup"))
        faults.point("delete:after-kill")
        removed = sf.destroy()
        faults.point("delete:after-state-removed")
    finally:
        sf.unlock()
    if removed and poststop:
        # Only the caller that removed the record gets here: exactly once.
        from ..errors import log
        from ..hooks import run_hooks_warning
        state = container.oci_state()
        state["pid"] = 0
        run_hooks_warning("poststop", poststop, state, log)
    if removed:
        errors += _after_removal(root, sf, container)
    if errors:
        raise Failure("; ".join(errors))
    return removed


def _after_removal(root, sf, container):
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
    if container is not None and container.record.get("podRole") != pod.SANDBOX:
        return []  # only a pod's sandbox has members (create checks it)
    errors = []
    for member, _msf, _record in list_records(root, sandbox_id=sf.cid):
        try:
            destroy(root, member, force=True)
        except NotExist:
            continue  # destroyed meanwhile by someone else
        except Failure as e:
            errors.append(str(e))
    return errors


def _cgroup_of(sf, container):
    """The container's cgroups: from its record, or from the journal of a
    create that was killed before it saved one."""
    from .. import cgroups
    journal = sf.path("cgroup")
    record = container.record.get("cgroup") if container is not None else None
    return cgroups.load(record, journal) if record else cgroups.recover(journal)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _poststop_hooks(sf, record):
    from ..hooks import hooks_of, may_have
    if not may_have(record, "poststop"):
        return ()
    try:
        return hooks_of(sf.read_spec()).poststop
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def _load_for_destroy(sf, force):
    """(Container or None, why its record is unreadable or None)."""
    try:
        return Container(sf, sf.load()), None
    except NotExist:
        return None, None  # only a lock file: a create that was killed before saving
    except Failure as e:
        if not force:
            raise
        # A corrupt or foreign record: --force finds the processes without
        # it (unrecorded.py) and removes the files.
        return None, str(e)


def _stop(container, errors):
    for role in ("sandbox", "gofer"):
        ident = container.record.get(role) or {}
        pid, start = ident.get("pid"), ident.get("startTime")
        if not pid:
            continue
        if not proc.kill_and_wait(pid, start, signals.SIGKILL, KILL_TIMEOUT):
            errors.append(f"{role} process {pid} did not exit within {KILL_TIMEOUT:g}s of SIGKILL")
