"""Benchmark runsc-py against the reference runtimes, side by side.

Run from the repository root, as root:

    .venv/bin/python tests/bench/bench.py [--rounds N] [--quick]
        [--runtimes runsc-py,runc,crun,runsc] [--scale 10,100,1000]
        [--metrics floor,lifecycle,run,commands,concurrency,memory,scale]
        [--workers 4] [--out bench-out] [--host-cgroup2]

Every runtime is driven through its CLI as an engine drives it (runsc-py is
the installed console script .venv/bin/runsc-py; runsc gets
--platform=ptrace --network=none), each with its own --root, rootfs and
bundles in a temp dir named with a unique token. The bench is a child
subreaper, like containerd's shim, and waits for a container's exit with a
pidfd. Metrics:

  floor        python -c pass, python -S -c pass, each runtime's --version
  lifecycle    create + start + wait for exit + delete of /bin/true
  run          a foreground `run` of /bin/true
  commands     create, start, state, kill (KILL; the wait is not counted)
               and delete of a `sleep 1000` container, each timed alone
  concurrency  4 and 16 threads running lifecycles: containers per second,
               then a leak check
  memory       PSS of the processes an idle running container keeps alive
               besides its workload, per container, with 1 and 10 running
  scale        `state ID` and `list` with 10, 100, 1000 created containers
               (a runtime is "n/a" at a size when creating them fails, or
               memory or pids run short first)

Per-call metrics interleave the runtimes round by round. The report (min,
median, p90, and the median over runc's) goes to stdout and to
OUT/bench.md (default: bench-out/ in the repository), the samples to
OUT/bench.json. A runtime whose command fails is reported "failed: <its
error>" and the bench goes on. At the end, and on Ctrl-C, every container
is deleted and a leak check runs: the exit status is 1 if anything was
left behind (processes, mounts, cgroups, state files) or on Ctrl-C.

--quick: 3 rounds, scale 10 and 100 (a minute or two). --host-cgroup2: see
hide_cgroup2(). A default run takes 10-15 minutes on 2 cores, most of it
creating and deleting 1000 containers of each runtime in `scale`.
"""

import argparse
import ctypes
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.bench import metrics, report  # noqa: E402
from tests.bench.procs import (REAPER, STOP, CommandError, log, output_line, processes,  # noqa: E402
                               read_text, wait_gone)
from tests.bench.runtimes import COMMANDS, Runtime, installed  # noqa: E402
from tests.support import leaks  # noqa: E402

GROUPS = ["floor", "lifecycle", "run", "commands", "concurrency", "memory", "scale"]
CGROUP2 = "/sys/fs/cgroup/unified"
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 0x20000, 0x1000, 0x4000, 0x40000, 2
_libc = ctypes.CDLL(None, use_errno=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark runsc-py against runc, crun and runsc.")
    p.add_argument("--rounds", type=int, help="rounds of per-call metrics (default 20; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="few rounds, scale only 10,100")
    p.add_argument("--runtimes", help="comma-separated (default: runsc-py and the installed references)")
    p.add_argument("--scale", help="container counts for `scale` (default 10,100,1000)")
    p.add_argument("--metrics", default=",".join(GROUPS), help="metric groups to run")
    p.add_argument("--workers", type=int, default=4, help="threads creating/deleting many containers")
    p.add_argument("--out", default=os.path.join(REPO, "bench-out"), help="for bench.md and bench.json")
    p.add_argument("--host-cgroup2", action="store_true",
                   help="keep the cgroup2 mount visible even where crun then refuses to run")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 20)
    args.scale = [int(n) for n in (args.scale or ("10,100" if args.quick else "10,100,1000")).split(",")]
    args.metrics = args.metrics.split(",")
    names = args.runtimes.split(",") if args.runtimes else ["runsc-py"] + [
        n for n in COMMANDS if n != "runsc-py" and installed(n)]
    for name in names + args.metrics:
        if name not in COMMANDS and name not in GROUPS:
            p.error(f"unknown runtime or metric {name!r}")
    args.runtimes = names
    return args


def hide_cgroup2():
    """crun refuses a hybrid cgroup layout whose cgroup2 hierarchy has
    controllers ("drop all controllers from cgroupv2"; here it holds
    hugetlb, which no runtime is asked to use). The bench then moves into a
    private mount namespace where that hierarchy's cgroup.controllers reads
    empty (/dev/null bound over it); every runtime it starts sees the same.
    Must run before any thread exists: it changes the calling thread only."""
    controllers = read_text(f"{CGROUP2}/cgroup.controllers").split()
    if not controllers:
        return []
    target = f"{CGROUP2}/cgroup.controllers".encode()
    if (_libc.unshare(CLONE_NEWNS) or _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
            or _libc.mount(b"/dev/null", target, None, MS_BIND, None)):
        raise OSError(ctypes.get_errno(), f"hiding {CGROUP2}/cgroup.controllers")
    return [f"{CGROUP2} has controllers ({', '.join(controllers)}), which crun refuses: the bench runs in "
            "a mount namespace where its cgroup.controllers reads empty, for all runtimes alike "
            "(--host-cgroup2 to keep it)"]


def _interrupt(signum, frame):
    STOP.set()
    raise KeyboardInterrupt


def measure(args, results, runtimes):
    phases = {
        "floor": lambda: metrics.floor(results, runtimes, args.rounds),
        "concurrency": lambda: metrics.concurrency(results, runtimes, (4, 16), max(2, args.rounds // 4),
                                                    args.workers),
        "memory": lambda: metrics.memory(results, runtimes, (1, 10), args.workers),
        # a few rounds suffice: with 1000 containers one `list` may take seconds
        "scale": lambda: metrics.scale(results, runtimes, args.scale, min(args.rounds, 10), args.workers),
    }
    for group in args.metrics:
        log(f"measuring {group}")
        if group in metrics.PER_CALL:
            metrics.per_call(results, runtimes, args.rounds, group)
        else:
            phases[group]()


def version_of(rt):
    try:
        return output_line(COMMANDS[rt.name] + ["--version"])
    except CommandError as e:
        return f"failed: {e}"


def _live_children():
    """Children of the bench that still run: a container init or sandbox
    nobody deleted (runc's init carries no id in its cmdline)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        for pid in read_text(f"/proc/self/task/{task}/children").split():
            stat = read_text(f"/proc/{pid}/stat")
            if stat and stat[stat.rindex(")") + 2] != "Z":
                pids.append(int(pid))
    return pids


def _remove_cgroups(token, leaked_too):
    """rmdir /TOKEN in every hierarchy; with `leaked_too`, what a runtime
    left below it first (rmdir fails on a cgroup that has processes)."""
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy, token)
        below = [d for d, _, _ in os.walk(top, topdown=False) if d != top] if leaked_too else []
        for path in below + [top]:
            try:
                os.rmdir(path)
            except OSError:
                pass


def _force_clean(token, workdir):
    """After the leak report: kill, unmount and remove what was left."""
    victims = [pid for pid, _comm, argv in processes() if token in " ".join(argv)] + _live_children()
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(victims, 10)
    for line in reversed(leaks.leaked_mounts([workdir])):
        _libc.umount2(line.split(" ", 1)[1].encode(), MNT_DETACH)
    _remove_cgroups(token, leaked_too=True)


def clean_up(runtimes, token, workdir, workers):
    """Delete every container the bench may have left, check for leaks, and
    return them (after removing them too, so the machine stays clean)."""
    STOP.clear()
    for rt in runtimes:
        rt.delete_leftovers(workers)
    _remove_cgroups(token, leaked_too=False)
    left = metrics.check_leaks(token, [workdir], [rt.root for rt in runtimes], settle=10)
    left += [f"process {pid}: {read_text(f'/proc/{pid}/comm').strip()}, still a child of the bench"
             for pid in _live_children()]
    if left:
        _force_clean(token, workdir)
    # never recurse into a mount that is still there (a rootfs bind, say)
    if not leaks.leaked_mounts([workdir]):
        shutil.rmtree(workdir, ignore_errors=True)
    return left


def compile_runtime():
    """runsc-py as installed: with its bytecode. A checkout's editable
    install has none until something writes it, and with
    PYTHONDONTWRITEBYTECODE set nothing does: every call would measure
    Python compiling the runtime."""
    import compileall
    for package in ("runsc_py", "sandbox", "gofer", "specs"):
        compileall.compile_dir(os.path.join(REPO, package), quiet=1)


def main(argv=None):
    args = parse_args(argv)
    notes = [] if args.host_cgroup2 else hide_cgroup2()
    compile_runtime()
    token = "bench-" + secrets.token_hex(3)
    workdir = os.path.join(tempfile.gettempdir(), token)
    os.mkdir(workdir)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    results, runtimes, versions = report.Results(), [], {}
    date, machine = time.strftime("%Y-%m-%d %H:%M:%S %Z"), report.machine()   # load before the bench
    began, interrupted = time.monotonic(), False
    try:
        runtimes = [Runtime(name, workdir, token) for name in args.runtimes]
        REAPER.start()
        versions = {rt.name: version_of(rt) for rt in runtimes}
        measure(args, results, runtimes)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted: the results are partial")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        left = clean_up(runtimes, token, workdir, args.workers)
    notes.append(f"took {time.monotonic() - began:.0f} s")
    header = {"date": date, "machine": machine, "versions": versions, "notes": notes,
              "options": f"rounds {args.rounds}, scale {args.scale}, workers {args.workers}, token {token}",
              "leaks": left}
    print(report.write(args.out, results, header), end="")
    for line in left:
        print(f"LEAK: {line}", file=sys.stderr)
    return 1 if left or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
