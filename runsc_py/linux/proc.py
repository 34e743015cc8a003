"""Process identity and liveness from /proc, and pidfd waits.

A pid alone does not name a process: pids are reused (runc #871, crun #301).
The runtime records the start time (field 22 of /proc/PID/stat, in clock
ticks since boot) with every pid and treats a pid as its process only while
the start time matches. A zombie counts as dead: on hosts whose PID 1 never
reaps, an exited sandbox stays a zombie until the engine's subreaper (or
nobody) collects it.

Only os and select are used here: `state` and `list` call this on their hot
path.
"""

import os
import select


def stat_fields(pid):
    """(state, start_time) of `pid`, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def start_time(pid):
    fields = stat_fields(pid)
    return None if fields is None else fields[1]


def is_alive(pid, start):
    """True if `pid` is still the process that started at `start` and not a zombie."""
    if not pid or pid <= 0:
        return False
    fields = stat_fields(pid)
    if fields is None:
        return False
    state, started = fields
    if start is not None and started != start:
        return False
    return state not in ("Z", "X", "x")


def pidfd_for(pid, start):
    """A pidfd for the recorded process, or None if it is gone.

    The start time is checked after the pidfd is open, so the fd cannot
    name a process that reused the pid."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not is_alive(pid, start):
        os.close(fd)
        return None
    return fd


def wait_pidfd(fd, timeout):
    """Wait until the process behind `fd` exits; True if it did within `timeout` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


def kill_and_wait(pid, start, sig, timeout):
    """Send `sig` to the recorded process and wait for it to exit.

    Returns True if the process is gone (or was already). Signals go through
    the pidfd, so a reused pid is never signalled."""
    from .signals import pidfd_send_signal
    fd = pidfd_for(pid, start)
    if fd is None:
        return True
    try:
        try:
            pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return True
        return wait_pidfd(fd, timeout)
    finally:
        os.close(fd)
