"""events: a container's resource statistics and OOM notifications, in the
JSON lines of `runc events`.

`--stats` prints one {"type": "stats", "id": ID, "data": {...}} and exits.
Otherwise statistics are printed every interval and {"type": "oom", "id":
ID} whenever the memory controller reports an out-of-memory condition,
until the container stops. One poll(2) waits on the OOM notification (v1:
an eventfd of memory.oom_control; v2: memory.events), the sandbox's pidfd
and the interval's timeout: nothing is polled in a loop."""

import json
import os
import select
import sys
import time

from .. import status as st
from ..errors import Failure, NotRunning
from ..linux import proc
from . import load

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """A Go duration as runc's --interval takes it: `5s`, `100ms`, `1m30s`, `1.5s`."""
    import re
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Failure(f"--interval: invalid duration {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise Failure("--interval: the duration must be greater than 0")
    return seconds


def _emit(event, out):
    out.write(json.dumps(event, separators=(",", ":")) + "\n")
    out.flush()


def _cgroup_of(container):
    from .. import cgroups
    cgroup = cgroups.load(container.record.get("cgroup"))
    if cgroup is None:
        raise Failure(f'container "{container.cid}" has no cgroup: it has no statistics')
    return cgroup


def _stats_event(container, cgroup):
    try:
        data = cgroup.stats()
    except OSError as e:
        from ..errors import os_error_text
        raise Failure(f"reading the statistics of container \"{container.cid}\": {os_error_text(e)}") from None
    return {"type": "stats", "id": container.cid, "data": data}


def events(root, cid, stats_only=False, interval=5.0, out=None):
    out = out or sys.stdout
    container = load(root, cid)
    if container.status == st.STOPPED:
        raise NotRunning(cid)
    cgroup = _cgroup_of(container)
    if stats_only:
        _emit(_stats_event(container, cgroup), out)
        return
    sandbox = container.sandbox
    pidfd = proc.pidfd_for(sandbox.get("pid"), sandbox.get("startTime"))
    if pidfd is None:
        raise NotRunning(cid)
    watch = cgroup.oom_watch()
    try:
        _stream(container, cgroup, pidfd, watch, interval, out)
    finally:
        os.close(pidfd)
        if watch is not None:
            watch.close()


def _stream(container, cgroup, pidfd, watch, interval, out):
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watch is not None:
        poller.register(watch.fileno(), watch.mask)
    due = time.monotonic() + interval
    while True:
        ready = {fd for fd, _ in poller.poll(max(0, int((due - time.monotonic()) * 1000)) + 1)}
        if watch is not None and (watch.fileno() in ready or pidfd in ready):
            for _ in range(watch.events()):
                _emit({"type": "oom", "id": container.cid}, out)
        if pidfd in ready:
            return  # the container stopped: no more events
        if time.monotonic() >= due:
            _emit(_stats_event(container, cgroup), out)
            due += interval
