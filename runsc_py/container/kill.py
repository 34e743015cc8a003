"""kill: send a signal to the container's process.

Works on created, running and paused containers (runtime-spec #875); a
stopped one is `container not running`. The signal goes through the
sandbox, which forwards it to the workload (PID 1 of the container's pid
namespace, so the kernel drops a signal it has no handler for, SIGKILL and
SIGSTOP excepted, as with runc); SIGKILL goes straight to the sandbox,
whose death kills PID 1 (PR_SET_PDEATHSIG), and PID 1's the whole pid
namespace. The lock is not held while anything is waited for (podman
#8501).

A paused container's processes are frozen: other signals go straight to
the sandbox and stay pending until `resume` (as with runc), since the
frozen sandbox cannot answer its control socket; after SIGKILL the cgroup
is thawed, because a task frozen by the v1 freezer does not die until it
is thawed."""

import os

from .. import status as st
from ..errors import Failure, NotRunning
from ..linux import proc, signals
from . import control, load_locked


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `SIGRTMIN+3`."""
    raw = text.strip()
    if raw.isdigit():
        number = int(raw)
        if 0 <= number < signals.NSIG:  # 0: only checks that the container is there
            return number
        raise Failure(f"invalid signal {text!r}")
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name != base:
            try:
                offset = int(name[len(base):])
            except ValueError:
                break
            number = getattr(signals, base) + offset
            if signals.SIGRTMIN <= number <= signals.SIGRTMAX:
                return number
            break
    number = signals.by_name(name)
    if number is None:
        raise Failure(f"invalid signal {text!r}")
    return number


def kill(root, cid, sig: int, all_processes=False):
    container = load_locked(root, cid)
    try:
        if not st.can_kill(container.status):
            container.persist_if_stale()
            raise NotRunning(cid)
        sandbox = container.sandbox
        target = (sandbox.get("pid"), sandbox.get("startTime"))
        paused = container.status == st.PAUSED
        if all_processes:
            # Under the lock: it may freeze the container for a moment, and
            # a pause or resume in between would be undone.
            signal_all(container, sig)
            return
    finally:
        container.sf.unlock()
    if sig == signals.SIGKILL:
        _signal_sandbox(container, *target, sig)
        if paused:
            _thaw(container)
    elif paused:
        _signal_sandbox(container, *target, sig)
    else:
        try:
            reply = control.request(container, {"op": "signal", "signal": sig}, timeout=5)
        except Failure:
            if _exits_soon(*target):
                raise NotRunning(cid) from None
            raise
        if "error" in reply:
            raise Failure(reply["error"])


def _signal_sandbox(container, pid, start, sig):
    fd = proc.pidfd_for(pid, start)
    if fd is None:
        raise NotRunning(container.cid)
    try:
        signals.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise NotRunning(container.cid) from None
    finally:
        os.close(fd)


def _thaw(container):
    from .. import cgroups
    cgroup = cgroups.load(container.record.get("cgroup"))
    if cgroup is not None and cgroup.frozen():
        cgroup.thaw()


def signal_all(container, sig):
    """Every process of the container: those in its cgroup, or without
    one, the members of the sandbox's pid namespace seen from the host,
    workload first and the sandbox last. The sandbox (which forwards what
    it gets to the workload) and the gofer (the runtime's own helper) get
    SIGKILL only; before `start` the sandbox gets the signal too: there is
    no workload yet, and a signal that ends a process ends the container."""
    from .. import cgroups
    cgroup = cgroups.load(container.record.get("cgroup"))
    if cgroup is not None:
        spare = {container.gofer.get("pid")}
        if container.status != st.CREATED:
            spare.add(container.sandbox.get("pid"))
        if not cgroup.signal_all(sig, spare):
            raise NotRunning(container.cid)
        return
    from .processes import container_pids
    pids = container_pids(container)
    if not pids:
        raise NotRunning(container.cid)
    sandbox_pid = container.sandbox.get("pid")
    for pid in sorted(pids, key=lambda p: p == sandbox_pid):
        if pid == sandbox_pid and sig != signals.SIGKILL:
            continue  # the sandbox forwards; signalling it too would double-deliver
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _exits_soon(pid, start, within=2.0):
    """Whether a sandbox that did not answer is gone, or going: a dying
    sandbox has closed its socket before it is a zombie, so a concurrent
    delete shows as a refused connection to a process that is still there
    for a moment."""
    fd = proc.pidfd_for(pid, start)
    if fd is None:
        return True
    try:
        return proc.wait_pidfd(fd, within)
    finally:
        os.close(fd)
