"""Crash injection: the CLI SIGKILLed at each step of create, start and
delete, the way an engine killed mid-call leaves it. Afterwards the root
answers clearly, `delete --force` leaves nothing, the id can be reused, and
poststop never runs twice."""

import json
import os
import signal

import pytest

from tests.support.busybox import read_config, write_config
from tests.support.leaks import leaked_processes
from tests.support.runtime import wait_until

CREATE_STEPS = ["create:after-gofer-fork", "create:after-sandbox-fork", "create:before-save"]


def fault_env(step):
    return dict(os.environ, RUNSC_PY_FAULT=step)


def poststop_counter(bundle, out):
    config = read_config(bundle)
    config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo x >> {out}"]}]}
    write_config(bundle, config)


def assert_answers_clearly(rt, cid):
    listed = rt("list", "--format", "json")
    assert "Traceback" not in listed.stderr
    ids = [c["id"] for c in json.loads(listed.stdout)]
    state = rt("state", cid, check=False)
    assert "Traceback" not in state.stderr
    if state.returncode == 0:
        assert cid in ids
    else:
        assert "does not exist" in state.stderr and cid not in ids


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_create_killed(env, step):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"])
    result = rt("create", "--bundle", bundle, cid, check=False, env=fault_env(step))
    assert result.returncode == -signal.SIGKILL
    # The helpers die with the CLI until create commits.
    wait_until(lambda: not leaked_processes(env.token), 10, "the helpers of the killed create to exit")
    assert_answers_clearly(rt, cid)
    assert rt("delete", "--force", cid).returncode == 0
    assert os.listdir(env.root) == []
    rt("create", "--bundle", bundle, cid)
    rt("delete", "--force", cid)


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
    count = open(out).read().count("x") if os.path.exists(out) else 0
    assert count == (1 if step == "delete:after-kill" else 0)
    rt("create", "--bundle", bundle, cid)
    rt("delete", "--force", cid)
