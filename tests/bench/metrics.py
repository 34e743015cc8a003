"""The measurements. Per-call metrics interleave the runtimes round by round
(rotating who goes first, so none always runs right after runsc's heavy
teardown), so drift of the machine hits all alike. A runtime whose command
fails stops there and is reported with the error."""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from tests.support import leaks

from .procs import CommandError, log, processes, pss_kib, room, timed_run, wait_gone
from .runtimes import COMMANDS, EXIT_TIMEOUT, SLEEP, TRUE

LIFECYCLES_PER_THREAD = 3
MEMORY_SETTLE = 1.0     # lets a just-started sandbox finish its lazy set-up


class Unavailable(Exception):
    """A measurement this machine cannot make for a runtime (n/a)."""


def _rotated(items, n):
    shift = n % len(items)
    return items[shift:] + items[:shift]


def interleave(results, subjects, rounds, unit):
    """subjects: (runtime label, metric names, once(round) -> {metric: value});
    a subject that fails is reported failed and not run again."""
    failed = set()
    for n in range(rounds):
        for index in _rotated(list(range(len(subjects))), n):
            label, metrics, once = subjects[index]
            if index in failed:
                continue
            try:
                values = once(n)
            except CommandError as e:
                failed.add(index)
                for metric in metrics:
                    results.fail(metric, label, str(e), unit)
                continue
            for metric in metrics:
                results.add(metric, label, values[metric], unit)


def lifecycle(rt, cid):
    """create + start + wait for the exit + delete of /bin/true, in seconds."""
    bundle = rt.bundle(cid, TRUE)
    begin = time.perf_counter()
    _, container = rt.create(cid, bundle)
    try:
        rt.call("start", cid)
        container.exit.wait(EXIT_TIMEOUT)
    finally:
        container.exit.close()
    rt.delete(cid)
    return time.perf_counter() - begin


def _commands_once(rt, n):
    cid = rt.cid("cmd", n)
    bundle = rt.bundle(cid, SLEEP)
    times = {}
    times["create"], container = rt.create(cid, bundle)
    try:
        times["start"] = rt.call("start", cid)
        times["state"] = rt.call("state", cid)
        times["kill"] = rt.call("kill", cid, "KILL")
        container.exit.wait(EXIT_TIMEOUT)     # not part of kill's time
    finally:
        container.exit.close()
    times["delete"] = rt.delete(cid)
    return times


def _lifecycle_once(rt, n):
    return {"lifecycle": lifecycle(rt, rt.cid("life", n))}


def _run_once(rt, n):
    cid = rt.cid("run", n)
    return {"run": rt.run(cid, rt.bundle(cid, TRUE))}


PER_CALL = {
    "lifecycle": (["lifecycle"], _lifecycle_once),
    "run": (["run"], _run_once),
    "commands": (["create", "start", "state", "kill", "delete"], _commands_once),
}


def per_call(results, runtimes, rounds, group):
    metrics, once = PER_CALL[group]
    interleave(results, [(rt.name, metrics, partial(once, rt)) for rt in runtimes], rounds, "s")


def _probe(metric, argv, n):
    return {metric: timed_run(argv, 30)}


def floor(results, runtimes, rounds):
    """What starting a process costs at all: Python with and without site,
    and each runtime's `--version`."""
    probes = [("python", "floor: python -c pass", [sys.executable, "-c", "pass"]),
              ("python", "floor: python -S -c pass", [sys.executable, "-S", "-c", "pass"])]
    probes += [(rt.name, "floor: --version", COMMANDS[rt.name] + ["--version"]) for rt in runtimes]
    interleave(results, [(label, [metric], partial(_probe, metric, argv)) for label, metric, argv in probes],
               rounds, "s")


def _burst(rt, level, n):
    """Containers per second of `level` threads, each running lifecycles
    on its own ids."""
    def worker(t):
        for i in range(LIFECYCLES_PER_THREAD):
            lifecycle(rt, rt.cid(f"conc{level}", (n * level + t) * LIFECYCLES_PER_THREAD + i))
    begin = time.perf_counter()
    with ThreadPoolExecutor(level) as pool:
        list(pool.map(worker, range(level)))     # re-raises a worker's error
    return level * LIFECYCLES_PER_THREAD / (time.perf_counter() - begin)


def _burst_once(rt, level, n):
    return {f"concurrency {level}": _burst(rt, level, n)}


def concurrency(results, runtimes, levels, rounds, workers):
    for level in levels:
        interleave(results, [(rt.name, [f"concurrency {level}"], partial(_burst_once, rt, level))
                             for rt in runtimes], rounds, "containers/s")
    for rt in runtimes:
        # a lifecycle that failed midway left its container to the bench:
        # delete it first, so what remains is what the runtime left
        rt.delete_leftovers(workers)
        left = check_leaks(f"{rt.token}-{rt.name}-conc", [rt.dir], [rt.root])
        results.note("concurrency leak check", rt.name,
                     "clean" if not left else f"LEAKED {len(left)}: {left[0]}", "")


def check_leaks(needle, paths, roots, settle=5.0):
    """What is left with `needle` in its cmdline or cgroup name, mounted
    under `paths`, or in the state `roots`. A process gets `settle` seconds
    to finish exiting first (a gofer may outlive `delete` by a moment)."""
    wait_gone([pid for pid, _comm, argv in processes() if needle in " ".join(argv)], settle)
    found = leaks.leaked_processes(needle) + leaks.leaked_mounts(paths) + leaks.leaked_cgroups(needle)
    for root in roots:
        found += leaks.leaked_files(root)
    return found


def populate(rt, size, workers):
    """`size` created containers of `sleep`, made by `workers` threads.
    Unavailable if the machine runs short of memory or pids first, or a
    create fails after some succeeded; CommandError if none could be made."""
    made, problems, lock = [], [], threading.Lock()

    def make(i):
        if problems:
            return
        left, short = room()
        if short:
            problems.append(Unavailable(f"stopped at {len(made)} containers: {left}"))
            return
        cid = rt.cid(f"s{size}", i)
        try:
            _, container = rt.create(cid, rt.bundle(cid, SLEEP))
        except CommandError as e:
            problems.append(Unavailable(f"create #{len(made) + 1} failed: {e}") if made else e)
            return
        with lock:
            made.append(container)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(make, range(size)))
    if problems:
        rt.stop_all(made, workers)
        raise problems[0]
    return made


def scale(results, runtimes, sizes, rounds, workers):
    """`state ID` and `list` with `size` containers in the root. Runtimes go
    one after the other: a thousand containers of each at once would not
    fit in memory."""
    for size in sizes:
        for rt in runtimes:
            metrics = [f"scale: state @{size}", f"scale: list @{size}"]
            log(f"scale {size}: {rt.name}: creating")
            try:
                containers = populate(rt, size, workers)
                log(f"scale {size}: {rt.name}: created; {room()[0]}")
            except (Unavailable, CommandError) as e:
                for metric in metrics:
                    results.fail(metric, rt.name, str(e), "s",
                                 status="n/a" if isinstance(e, Unavailable) else "failed")
                continue
            try:
                for _ in range(rounds):
                    results.add(metrics[0], rt.name, rt.call("state", containers[0].cid), "s")
                    results.add(metrics[1], rt.name, rt.call("list"), "s")
            except CommandError as e:
                for metric in metrics:
                    results.fail(metric, rt.name, str(e), "s")
            finally:
                rt.stop_all(containers, workers)


def memory(results, runtimes, counts, workers):
    """PSS of the processes kept alive per idle running container besides
    the workload, averaged over `count` containers."""
    for count in counts:
        metric = f"memory @{count}"
        for rt in runtimes:
            if not rt.has_helpers:
                results.add(metric, rt.name, 0.0, "MiB")
                results.note(metric, rt.name, "n/a: no helper process", "MiB")
                continue
            containers = []
            try:
                for i in range(count):
                    cid = rt.cid(f"m{count}", i)
                    containers.append(rt.create(cid, rt.bundle(cid, SLEEP))[1])
                    rt.call("start", cid)
                time.sleep(MEMORY_SETTLE)
                sizes = [[pss_kib(pid) for pid in rt.helpers(c.cid)] for c in containers]
                for pss in sizes:
                    results.add(metric, rt.name, sum(pss) / 1024, "MiB")
                results.note(metric, rt.name, f"{max(map(len, sizes))} processes per container", "MiB")
            except CommandError as e:
                results.fail(metric, rt.name, str(e), "MiB")
            finally:
                rt.stop_all(containers, workers)
