"""Finding the processes of a container whose record cannot be read.

`delete --force` of a container whose `.state` is empty, truncated, garbage
or valid JSON of the wrong shape has no pid to kill. What it still has,
from the most to the least authoritative:

1. The cgroup journal (`.cgroup`, runsc_py/cgroups): written by create
   before the first mkdir and kept for the container's life. Create puts
   the gofer and the set-up child (hence the sandbox and every process
   below it) into that cgroup, so it holds every process the container
   has: all of them get SIGKILL, paused or not.
2. The control socket (`.sock`): whoever answers a `ping` on it is the
   container's sandbox. The kernel names the sender of the reply
   (SO_PASSCRED, the same way create learns the sandbox's pid), so the pid
   is not taken from anything the damaged root says; a pidfd is opened and
   the title checked before the signal, so a reused pid is never hit. The
   container's PID 1 dies with the sandbox (it is the sandbox, or has
   PR_SET_PDEATHSIG), ending the workload, and the gofer exits when the
   sandbox goes (EOF on their socket). The sandbox's cgroup, when it is the default `/runsc-py/<id>`
   (a leaf made for that container alone), is killed and removed too.
3. A scan of /proc (bounded in time) for processes titled after the
   container (`runsc-py-sandbox <id>`, `runsc-py-gofer <id>`, set with
   prctl set_proctitle). A title alone never gets a signal: a container of
   the same id may live in another root. The scan is used to wait for the
   container's own titled processes to go after 1 or 2, and, when neither
   leads anywhere, to name the pids that may be left, in the error.

If neither 1 nor 2 finds the container, its default cgroup is removed if
empty (rmdir only), and if processes titled after it remain,
`find_and_kill` returns an error saying so (the caller exits non-zero)
instead of claiming success."""

import os
import time

from ..linux import proc, signals, unix

PING_TIMEOUT = 5.0   # s; a live sandbox answers in milliseconds
SCAN_TIMEOUT = 2.0   # s; for the whole of /proc
GONE_TIMEOUT = 5.0   # s; for titled processes to go once their container is killed
TITLES = ("runsc-py-sandbox", "runsc-py-gofer")  # sandbox.init.NAME, gofer.main.NAME


def find_and_kill(sf, cgroup, why, timeout):
    """SIGKILL every process of the container of `sf` whose record is
    unreadable (`why`); `cgroup` is the one its journal names, if any.
    Returns (the cgroup to remove or None, errors)."""
    if cgroup is not None:
        _kill_all(cgroup)
        return cgroup, []  # the cgroup's removal waits for them to be gone
    titled, complete = _titled(sf.cid)  # before the kill: afterwards the gofer would be gone unseen
    try:
        sandbox = _answering_sandbox(sf)
        if sandbox is not None:
            pid, fd = sandbox
            try:
                cgroup = _default_cgroup_of(pid, sf.cid)
                if cgroup is not None:
                    _kill_all(cgroup)
                try:
                    signals.pidfd_send_signal(fd, signals.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait_pidfd(fd, timeout)
            finally:
                os.close(fd)
            _still_there(titled, GONE_TIMEOUT)  # the gofer follows its sandbox
            return cgroup, []
        left = _still_there(titled, 0.5)  # one that was exiting anyway
    finally:
        for fd in titled.values():
            os.close(fd)
    _remove_empty_default_cgroup(sf.cid)
    if complete and not left:
        return None, []  # nothing of it runs
    if not complete:
        what = f"the scan of /proc for processes named after it did not finish within {SCAN_TIMEOUT:g}s"
    else:
        what = ("processes named after it were left alone, as they may belong to a container of the "
                f"same id in another root: pid {', '.join(map(str, sorted(left)))}")
    return None, [f"{why}, and neither its cgroup journal nor its control socket leads to its processes; "
                  f"{what}"]


def _kill_all(cgroup):
    if cgroup.frozen():
        cgroup.kill_frozen()
    cgroup.signal_all(signals.SIGKILL)


def _default_cgroup_of(pid, cid):
    """The sandbox's cgroup, when it is the default one create makes for
    `cid` (`/runsc-py/<id>`, a leaf of that container alone): without the
    journal, the only cgroup known to be the container's to remove. A
    linux.cgroupsPath cgroup may have existed before the container: it is
    left in place (its processes die with the sandbox)."""
    from .. import cgroups
    leaf = cgroups.cgroups_path(None, cid)
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    paths = {}
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        paths[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    host = cgroups.current_host()
    dirs = {}
    for h in host.hierarchies:
        ident = frozenset() if h.version == 2 else frozenset(h.key.split(","))
        if paths.get(ident) == leaf:
            dirs[h.key] = {"path": h.directory(leaf, host.mode == "v2"), "created": 1}
    return cgroups.load({"dirs": dirs}) if dirs else None


def _titled(cid):
    """{pid: pidfd} of the processes titled after `cid`, and whether the
    scan of /proc finished in time."""
    wanted = {f"{title} {cid}".encode() for title in TITLES}
    found = {}
    deadline = time.monotonic() + SCAN_TIMEOUT
    for name in os.listdir("/proc"):
        if time.monotonic() > deadline:
            return found, False
        if not name.isdigit():
            continue
        pid = int(name)
        if _title(pid) not in wanted:
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # gone meanwhile
        if _title(pid) in wanted:  # still that process, now held by the fd
            found[pid] = fd
        else:
            os.close(fd)
    return found, True


def _title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(4096).split(b"\0", 1)[0]
    except OSError:
        return None


def _remove_empty_default_cgroup(cid):
    """The default cgroup `/runsc-py/<id>` of a container that nothing leads
    to, if it is empty: rmdir only, never a signal (a container of the same
    id in another root may own it, and then its processes keep it busy)."""
    from .. import cgroups
    host = cgroups.current_host()
    leaf = cgroups.cgroups_path(None, cid)
    for h in host.hierarchies:
        try:
            os.rmdir(h.directory(leaf, host.mode == "v2"))
        except OSError:
            pass  # not there, or busy


def _answering_sandbox(sf):
    """(pid, pidfd) of the sandbox that answers on the control socket, or
    None. The title is checked once the pidfd is open: the fd then names
    the process that answered, not one that reused its pid."""
    pid = _ping(sf.path("sock"))
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None  # answered, and gone already
    if _title(pid) != f"{TITLES[0]} {sf.cid}".encode():
        os.close(fd)
        return None
    return pid, fd


def _ping(path):
    """The pid (in our pid namespace) of whoever answers a ping on the
    socket at `path`, or None."""
    try:
        sock = unix.connect(path, PING_TIMEOUT)
    except OSError:
        return None  # no socket, or nobody listens on it: no sandbox there
    with sock:
        try:
            unix.pass_credentials(sock)
            unix.send(sock, {"op": "ping"})
            reply, fds, pid = unix.recv_with_pid(sock)
        except OSError:
            return None
        for fd in fds:
            os.close(fd)
    return pid if reply is not None else None


def _still_there(titled, timeout):
    """The pids of `titled` still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = set()
    for pid, fd in titled.items():
        if not proc.wait_pidfd(fd, max(0.0, deadline - time.monotonic())):
            left.add(pid)
    return left
