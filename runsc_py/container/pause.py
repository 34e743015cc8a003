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
    container = load_locked(root, cid)
    try:
        if not st.can_pause(container.status):
            container.persist_if_stale()
            raise NotRunning(cid)
        cgroup = _cgroup_of(container)
        cgroup.freeze()
        container.set_status(st.PAUSED)
        try:
            container.sf.save_locked(container.record)
        except BaseException:
            cgroup.thaw()  # the record says running: so must the processes
            raise
    finally:
        container.sf.unlock()


def resume(root, cid):
    container = load_locked(root, cid)
    try:
        if not st.can_resume(container.status):
            container.persist_if_stale()
            raise Failure(f'container "{cid}" is not paused: container not paused')
        cgroup = _cgroup_of(container)
        cgroup.thaw()
        container.set_status(st.RUNNING)
        try:
            container.sf.save_locked(container.record)
        except BaseException:
            cgroup.freeze()  # the record says paused: so must the processes
            raise
    finally:
        container.sf.unlock()
