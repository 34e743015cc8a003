"""Processes for the benchmark: spawning and timing commands, reaping every
child like a shim, waiting for a container's exit, reading /proc.

The bench is a child subreaper, so sandboxes, gofers and container inits
are reparented to it when `create` exits. One thread reaps every child as
soon as it exits, as containerd's shim does on SIGCHLD: a zombie left
around is not harmless (runsc's `delete` waits 5 s for its exited gofer,
which a zombie still looks like, then fails). Commands the bench spawned
get their exit status from that thread.
"""

import os
import select
import signal
import sys
import tempfile
import threading
import time

import prctl

# What subprocess restores in a child: Python ignores SIGPIPE, and the bench
# ignores SIGINT/SIGTERM while it cleans up.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)


class CommandError(Exception):
    """A runtime command failed or timed out; the text is one line."""


# Set on Ctrl-C: commands queued in worker threads then fail at once
# instead of running on while the bench wants to clean up.
STOP = threading.Event()
_STARTED = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


class _Reaper:
    """Spawns commands and reaps every child of the bench (see above)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._spawned = threading.Condition(self._lock)
        self._generation = 0    # bumped by each spawn, so no wake-up is missed
        self._waiters = {}      # pid -> [Event, exit code]

    def start(self):
        prctl.set_child_subreaper(True)
        threading.Thread(target=self._loop, name="reaper", daemon=True).start()

    def spawn(self, argv, stdin, stdout, stderr):
        actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                   (os.POSIX_SPAWN_DUP2, stderr, 2)]
        # Registered under the lock the reaper takes, so it cannot reap the
        # child before its waiter exists.
        with self._lock:
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions,
                                  setsigdef=_DEFAULT_SIGNALS)
            self._waiters[pid] = [threading.Event(), None]
            self._generation += 1
            self._spawned.notify()
        return pid

    def wait(self, pid, timeout):
        """The exit code of a spawned pid, or None if it ran past `timeout`."""
        event, _ = self._waiters[pid]
        if event.wait(timeout):
            return self._waiters.pop(pid)[1]
        return None

    def _loop(self):
        while True:
            generation = self._generation
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                with self._lock:
                    while generation == self._generation:
                        self._spawned.wait()
                continue
            with self._lock:
                waiter = self._waiters.get(pid)
            if waiter:  # otherwise an orphan: reaping it was the point
                waiter[1] = os.waitstatus_to_exitcode(status)
                waiter[0].set()


REAPER = _Reaper()


def _last_line(f):
    f.seek(0)
    lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no message)"


def timed_run(argv, timeout, stdout=None):
    """Run `argv` to completion; its wall time in seconds (CommandError if
    it fails). stdin and stdout are /dev/null, stderr an unlinked file: a
    container inherits the stdio of `create`, and a pipe would stay open as
    long as it lives; a file also keeps the error message."""
    if STOP.is_set():
        raise CommandError("interrupted")
    with open(os.devnull, "r+b") as null, tempfile.TemporaryFile() as err:
        out = stdout.fileno() if stdout else null.fileno()
        begin = time.perf_counter()
        try:
            pid = REAPER.spawn(argv, null.fileno(), out, err.fileno())
        except OSError as e:
            raise CommandError(f"{argv[0]}: {e.strerror}") from None
        code = REAPER.wait(pid, timeout)
        elapsed = time.perf_counter() - begin
        if code is None:
            os.kill(pid, signal.SIGKILL)
            REAPER.wait(pid, timeout)
            raise CommandError(f"timed out after {timeout:g} s")
        if code != 0:
            raise CommandError(f"exited {code}: {_last_line(err)}")
    return elapsed


def output_line(argv, timeout=30):
    """The first line `argv` prints (for versions in the header)."""
    with tempfile.TemporaryFile() as out:
        timed_run(argv, timeout, stdout=out)
        out.seek(0)
        return out.readline().decode(errors="replace").strip()


class ExitWatch:
    """A pidfd on a container's process, opened while it is surely alive
    (right after `create`), so a recycled pid cannot be mistaken for it."""

    def __init__(self, pid):
        self.pid = pid
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._fd = None     # already gone: nothing to wait for

    def wait(self, timeout):
        if self._fd is None:
            return
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            raise CommandError(f"pid {self.pid} still running {timeout:g} s after it should exit")

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def wait_gone(pids, timeout):
    """Wait (pidfd, bounded) until every pid has exited."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        watch = ExitWatch(pid)
        try:
            watch.wait(max(0.0, deadline - time.monotonic()))
        except CommandError:
            pass
        finally:
            watch.close()


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def processes():
    """(pid, comm, argv) of every live process (zombies carry no argv)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            argv = read_text(f"/proc/{name}/cmdline").split("\0")[:-1]
            if argv:
                yield int(name), read_text(f"/proc/{name}/comm").strip(), argv


def descendants(pid):
    """`pid` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue    # exited meanwhile
        for task in tasks:
            todo.extend(int(c) for c in read_text(f"/proc/{current}/task/{task}/children").split())
    return found


def pss_kib(pid):
    for line in read_text(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def meminfo_kib(field):
    return next((int(line.split()[1]) for line in read_text("/proc/meminfo").splitlines()
                 if line.startswith(field + ":")), 0)


def room():
    """(what is left of memory and tasks, whether that is short): creating
    more containers then would endanger the machine (a runsc sandbox has
    dozens of threads, and pid_max may be as low as 32768)."""
    available, total = meminfo_kib("MemAvailable"), meminfo_kib("MemTotal")
    tasks = int(read_text("/proc/loadavg").split()[3].split("/")[1])
    limit = min(int(read_text("/proc/sys/kernel/pid_max")), int(read_text("/proc/sys/kernel/threads-max")))
    text = f"MemAvailable {available >> 10} of {total >> 10} MiB, {tasks} of {limit} tasks"
    return text, available < max(2 << 20, total // 10) or tasks > limit * 3 // 4
