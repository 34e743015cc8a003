"""Helpers for the confinement and seccomp tests: configs, what a
container reports about itself, and the shape of a refusal."""

import json
import os

from specs.names import CAPABILITIES
from tests.support.busybox import default_config
from tests.support.leaks import leaked_processes


def config(args, linux=None, **process):
    """The default config running `args`, with `process` fields replaced and
    `linux` fields merged in."""
    cfg = default_config(list(args))
    cfg["process"].update(process)
    cfg["linux"].update(linux or {})
    return cfg


def caps(*names):
    """The bit mask /proc/PID/status shows for these capabilities."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask


def status(text):
    """/proc/PID/status text as {field: value}."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def cap_sets(text):
    """The capability lines of /proc/PID/status as {"CapBnd": int, ...}."""
    return {k: int(v, 16) for k, v in status(text).items() if k.startswith("Cap")}


def own_caps():
    with open("/proc/self/status") as f:
        return cap_sets(f.read())


def lacks_cap(name):
    """True if this process (and so the runtime it starts) lacks `name`."""
    return not own_caps()["CapEff"] & caps(name)


def run(env, cfg, name="c", **kw):
    """`runsc-py run` of a bundle with `cfg`; the CompletedProcess."""
    return env.rt("run", "--bundle", env.bundle(config=cfg), env.cid(name), **kw)


def output(env, cfg, name="c", **kw):
    return run(env, cfg, name, **kw).stdout


def assert_refused(env, cfg, *needles, command="run"):
    """`command` (run or create) fails the way every refusal must: exit 1,
    one line on stderr containing every needle, nothing left in the root,
    no process of the container."""
    cid = env.cid("refused")
    result = env.rt(command, "--bundle", env.bundle(config=cfg), cid, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    leftovers = os.listdir(env.root) if os.path.isdir(env.root) else []
    assert leftovers == [], leftovers
    assert leaked_processes(env.token) == []
    return lines[0]


def log_messages(env, level=None):
    """The messages of the runtime's --log file (JSON lines)."""
    try:
        with open(env.rt.log) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return [e["msg"] for e in entries if level is None or e["level"] == level]
