"""Crash injection: the CLI SIGKILLed at each step of create, start and
delete, the way an engine killed mid-call leaves it. Afterwards the root
answers clearly, `delete --force` leaves nothing, the id can be reused, and
poststop never runs twice."""

import json
import os
import random
import signal
import time

import pytest

from tests.support.busybox import read_config, write_config
from tests.support.leaks import leaked_cgroups, leaked_processes
from tests.support.runtime import wait_until

CREATE_STEPS = ["create:after-cgroup", "create:after-gofer-fork", "create:after-sandbox-fork", "create:before-save",
                "create:after-save"]


def fault_env(step):
    return dict(os.environ, RUNSC_PY_FAULT=step)


def poststop_counter(bundle, out):
    config = read_config(bundle)
    config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo x >> {out}"]}]}
    write_config(bundle, config)


def poststop_count(out):
    return open(out).read().count("x") if os.path.exists(out) else 0


def assert_answers_clearly(rt, cid):
    listed = rt("list", "--format", "json")
    assert "Traceback" not in listed.stderr and listed.stderr == ""
    ids = [c["id"] for c in json.loads(listed.stdout)]
    state = rt("state", cid, check=False)
    assert "Traceback" not in state.stderr
    if state.returncode == 0:
        assert cid in ids
        assert json.loads(state.stdout)["status"] in ("created", "running", "stopped")
    else:
        assert state.stderr == f'runsc-py: container "{cid}" does not exist\n' and cid not in ids


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_create_killed(env, step):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "poststop")
    bundle = env.bundle(["sleep", "1000"])
    poststop_counter(bundle, out)
    result = rt("create", "--bundle", bundle, cid, check=False, env=fault_env(step))
    assert result.returncode == -signal.SIGKILL
    # The helpers die with the CLI until create commits.
    wait_until(lambda: not leaked_processes(env.token), 10, "the helpers of the killed create to exit")
    assert_answers_clearly(rt, cid)
    assert rt("delete", "--force", cid).returncode == 0
    assert os.listdir(env.root) == []
    assert leaked_cgroups(env.token) == []  # the cgroups were made before the helpers
    assert poststop_count(out) <= 1
    before = poststop_count(out)
    rt("create", "--bundle", bundle, cid)
    rt("delete", "--force", cid)
    assert poststop_count(out) == before + 1


def test_start_killed(env):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "poststop")
    bundle = env.bundle(["sleep", "1000"])
    poststop_counter(bundle, out)
    rt("create", "--bundle", bundle, cid)
    result = rt("start", cid, check=False, env=fault_env("start:after-fork"))
    assert result.returncode == -signal.SIGKILL
    assert_answers_clearly(rt, cid)
    assert rt.status(cid) in ("created", "running")
    rt("delete", "--force", cid)
    assert open(out).read().count("x") == 1
    rt("create", "--bundle", bundle, cid)
    rt("delete", "--force", cid)


@pytest.mark.parametrize("step", ["delete:after-kill", "delete:after-state-removed"])
def test_delete_killed(env, step):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "poststop")
    bundle = env.bundle(["sleep", "1000"])
    poststop_counter(bundle, out)
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    result = rt("delete", "--force", cid, check=False, env=fault_env(step))
    assert result.returncode == -signal.SIGKILL
    assert_answers_clearly(rt, cid)
    assert rt("delete", "--force", cid).returncode == 0
    assert os.listdir(env.root) == []
    # The killed delete died before its poststop; the one that removed the
    # record ran it (before-removal kill) or nobody did (after-removal kill):
    # never twice.
    assert poststop_count(out) == (1 if step == "delete:after-kill" else 0)
    rt("create", "--bundle", bundle, cid)
    rt("delete", "--force", cid)


def test_every_fault_point_is_covered():
    """A fault point added to the runtime without a test here fails this."""
    import re
    from pathlib import Path
    steps = set()
    for path in Path(__file__).parents[2].joinpath("runsc_py").rglob("*.py"):
        steps.update(re.findall(r'faults\.point\("([^"]+)"\)', path.read_text()))
    covered = set(CREATE_STEPS) | {"start:after-fork", "delete:after-kill", "delete:after-state-removed"}
    assert steps == covered, f"fault points without a crash test: {sorted(steps - covered)}"


# -- SIGKILL at a random moment, not only at the named steps --------------------------

def kill_after(rt, delay, *args):
    """Run the CLI and SIGKILL it after `delay` seconds (if still running)."""
    proc = rt.popen(*args)
    try:
        proc.wait(timeout=delay)
    except Exception:
        proc.kill()
    return rt.finish(proc, timeout=30)


def assert_clean_after_force_delete(env, cid):
    assert_answers_clearly(env.rt, cid)
    env.rt("delete", "--force", cid)
    assert os.listdir(env.root) == []
    wait_until(lambda: not leaked_processes(cid), 10, f"the processes of {cid} to exit")
    assert leaked_cgroups(cid) == []


@pytest.mark.parametrize("command", ["create", "start", "delete"])
def test_killed_at_random_moments(env, command):
    """12 trials per command, each killed somewhere in its run (the delays
    spread over a whole call): the same id is reused every time, and the
    poststop hook never runs more than once per container."""
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "poststop")
    bundle = env.bundle(["sleep", "1000"])
    poststop_counter(bundle, out)
    rng = random.Random(1234)
    started = time.monotonic()
    rt("create", "--bundle", bundle, cid)
    full = time.monotonic() - started  # how long a create takes on this machine now
    rt("delete", "--force", cid)
    runs = poststop_count(out)
    for trial in range(12):
        delay = rng.uniform(0, full * 1.2)
        if command == "create":
            kill_after(rt, delay, "create", "--bundle", bundle, cid)
        else:
            rt("create", "--bundle", bundle, cid)
            if command == "delete":
                rt("start", cid)
                kill_after(rt, rng.uniform(0, 0.15), "delete", "--force", cid)
            else:
                kill_after(rt, rng.uniform(0, 0.15), "start", cid)
        assert_clean_after_force_delete(env, cid)
        count = poststop_count(out) - runs
        assert count <= 1, f"trial {trial}: poststop ran {count} times"
        if command == "start":
            assert count == 1, f"trial {trial}: the delete after a killed start must run poststop"
        runs = poststop_count(out)
