"""Multi-container sandboxes (pods): who belongs where, and the sandbox's
OOM score.

The CRI annotations decide. containerd's keys win over CRI-O's:

    io.kubernetes.cri.container-type   sandbox | container
    io.kubernetes.cri.sandbox-id       the sandbox a container joins
    io.kubernetes.cri-o.ContainerType  (CRI-O's spelling)
    io.kubernetes.cri-o.SandboxID

A `sandbox` (the pod's pause container) and a container without these
annotations (Docker, podman, by hand) each get a sandbox of their own; a
`container` joins the sandbox of its sandbox id, in the same --root.
"""

import errno

from .. import status as st

SANDBOX = "sandbox"
CONTAINER = "container"
_TYPE_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
_SANDBOX_ID_KEYS = ("io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID")


def _first(annotations, keys):
    for key in keys:
        value = annotations.get(key)
        if value:
            return value
    return None


def role_of(annotations):
    """(role, sandbox id): role is SANDBOX, CONTAINER or None; the sandbox id
    is set only for CONTAINER."""
    role = _first(annotations, _TYPE_KEYS)
    if role == CONTAINER:
        return CONTAINER, _first(annotations, _SANDBOX_ID_KEYS)
    return (SANDBOX if role == SANDBOX else None), None


def members(root, sid):
    """[(cid, StateFile, record)] of every readable container of sandbox `sid`."""
    from ..state_file import list_records
    return [(cid, sf, record) for cid, sf, record in list_records(root, sandbox_id=sid)
            if not isinstance(record, Exception)]


def oom_target(root, sid, original):
    """runsc's rule: the sandbox gets the lowest oomScoreAdj of the
    containers it holds, the pod's pause container excepted; its original
    value when none sets one."""
    values = [record["oomScoreAdj"] for _cid, _sf, record in members(root, sid)
              if record.get("podRole") != SANDBOX and record["status"] != st.STOPPED
              and record.get("oomScoreAdj") is not None]
    return min(values) if values else original


def adjust_sandbox_oom(root, sid):
    """Recompute the pod sandbox's oom_score_adj (after a member's create,
    start or destroy). Takes no container lock while scanning (readers never
    lock), and holds none while writing: the caller has released its own."""
    from ..errors import Failure, log
    from ..linux.proc import is_alive
    from . import load
    try:
        pod = load(root, sid)
    except Failure:
        return  # the sandbox is gone (or unreadable): nothing left to adjust
    sb = pod.sandbox
    if pod.record.get("podRole") != SANDBOX or not is_alive(sb.get("pid"), sb.get("startTime")):
        return
    target = oom_target(root, sid, sb.get("originalOomScoreAdj"))
    if target is None:
        return
    try:
        write_oom_score_adj(sb["pid"], target)
    except OSError as e:
        log.warning(f'sandbox "{sid}": setting oom_score_adj to {target}: {(e.strerror or str(e)).lower()}')


def write_oom_score_adj(pid, value):
    """A process that exited meanwhile is not an error (ESRCH/ENOENT)."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        if e.errno not in (errno.ESRCH, errno.ENOENT):
            raise


def read_oom_score_adj(pid="self"):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())
