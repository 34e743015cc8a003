"""kill: send a signal to the container's process.

Works on created, running and paused containers (runtime-spec #875); a
stopped one is `container not running`. The signal goes through the
sandbox, which forwards it to the workload; SIGKILL goes straight to the
sandbox (killing PID 1 kills the whole pid namespace). The lock is not held
while anything is waited for (podman #8501)."""

import os
import signal

from .. import status as st
from ..errors import Failure, NotRunning
from ..linux import proc
from . import control, load_locked


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `SIGRTMIN+3`."""
    raw = text.strip()
    if raw.isdigit():
        number = int(raw)
        if 0 <= number < signal.NSIG:  # 0: only checks that the container is there
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
            number = getattr(signal, base) + offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
            break
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise Failure(f"invalid signal {text!r}") from None


def kill(root, cid, sig: int, all_processes=False):
    container = load_locked(root, cid)
    try:
        if not st.can_kill(container.status):
            container.persist_if_stale()
            raise NotRunning(cid)
        sandbox = container.sandbox
        target = (sandbox.get("pid"), sandbox.get("startTime"))
    finally:
        container.sf.unlock()
    if all_processes:
        signal_all(container, sig)
    elif sig == signal.SIGKILL:
        _signal_sandbox(container, *target, sig)
    else:
        try:
            reply = control.request(container, {"op": "signal", "signal": sig}, timeout=5)
        except Failure:
            if not proc.is_alive(*target):
                raise NotRunning(cid) from None
            raise
        if "error" in reply:
            raise Failure(reply["error"])


def _signal_sandbox(container, pid, start, sig):
    fd = proc.pidfd_for(pid, start)
    if fd is None:
        raise NotRunning(container.cid)
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise NotRunning(container.cid) from None
    finally:
        os.close(fd)


def signal_all(container, sig):
    """Every process of the container: the members of the sandbox's pid
    namespace, seen from the host, workload first and the sandbox last."""
    from .processes import container_pids
    pids = container_pids(container)
    if not pids:
        raise NotRunning(container.cid)
    sandbox_pid = container.sandbox.get("pid")
    for pid in sorted(pids, key=lambda p: p == sandbox_pid):
        if pid == sandbox_pid and sig != signal.SIGKILL:
            continue  # the sandbox forwards; signalling it too would double-deliver
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
