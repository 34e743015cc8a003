"""pause and resume: freeze and thaw every process of the container.

Through the cgroup freezer (v1 freezer.state, v2 cgroup.freeze), like runc:
the container's cgroup holds the sandbox, the workload, the exec'd
processes and the gofer. The status goes `running -> paused -> running`
under the lock; the freeze is bounded (cgroups.v1/v2), so holding the lock
during it waits on nothing unbounded."""

from .. import status as st
from ..errors import Failure, NotRunning
from . import load_locked


def _cgroup_of(container):
    from .. import cgroups
    cgroup = cgroups.load(container.record.get("cgroup"))
    if cgroup is None or not cgroup.can_freeze():
        raise Failure(f'container "{container.cid}" has no cgroup freezer: it cannot be paused')
    return cgroup


def pause(root, cid):
    _switch(root, cid, st.can_pause, lambda: NotRunning(cid), "freeze", "thaw", st.PAUSED)


def resume(root, cid):
    _switch(root, cid, st.can_resume, lambda: Failure(f'container "{cid}" is not paused: container not paused'),
            "thaw", "freeze", st.RUNNING)


def _switch(root, cid, allowed, refusal, do, undo, status):
    """Freeze or thaw, then record the new status; if the record cannot be
    written, undo: the processes must be what the record says."""
    container = load_locked(root, cid)
    try:
        if not allowed(container.status):
            container.persist_if_stale()
            raise refusal()
        cgroup = _cgroup_of(container)
        getattr(cgroup, do)()
        container.set_status(status)
        try:
            container.sf.save_locked(container.record)
        except BaseException:
            getattr(cgroup, undo)()
            raise
    finally:
        container.sf.unlock()
