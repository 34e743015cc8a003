"""OCI hooks: where, when, with what, exactly once, and what a failing one does."""

import concurrent.futures
import json
import os
import time

import pytest

from tests.support.busybox import read_config, write_config

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
IN_CONTAINER = {"createContainer", "startContainer"}
# The status on each hook's stdin. The creation hooks see `created` (crun;
# runtime-tools' hooks_stdin test). runc 1.1.5, run here with hooks that
# dump their stdin, gives `creating` to prestart/createRuntime/createContainer,
# `created` to startContainer and `created` to poststart, but it runs
# poststart during `create`, before the user program is executed; runsc-py
# runs it where runtime.md says, after that, when the status is `running`
# (as crun gives it).
STATUS_SEEN = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
               "startContainer": "created", "poststart": "running", "poststop": "stopped"}


def recording_hook(kind, out):
    """A hook that records its arguments, env, stdin and mount namespace.
    startContainer runs after pivot_root, so it writes to /out (a bind
    mount of `out`); the others write to `out` on the host's paths."""
    target = "/out" if kind == "startContainer" else out
    script = (f'{{ echo "argv:$0 $1"; echo "env:$(env | sort | tr "\\n" " ")"; '
              f'echo "mnt:$(readlink /proc/self/ns/mnt)"; echo "stdin:$(cat)"; }} > {target}/{kind}; '
              f'echo {kind} >> {target}/order')
    return {"path": "/bin/sh", "args": ["sh", "-c", script, "zero", "one"], "env": ["HOOK_KIND=" + kind]}


def with_hooks(bundle, hooks):
    config = read_config(bundle)
    config["hooks"] = hooks
    write_config(bundle, config)


def add_out_mount(bundle, out):
    config = read_config(bundle)
    config["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]})
    write_config(bundle, config)


def parse_record(path):
    fields = {}
    for line in open(path).read().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    fields["state"] = json.loads(fields["stdin"])
    return fields


def test_every_hook_kind_runs_where_and_when_the_spec_says(env):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["true"])
    add_out_mount(bundle, out)
    with_hooks(bundle, {kind: [recording_hook(kind, out)] for kind in KINDS})
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    rt("wait", cid, timeout=20)
    rt("delete", cid)

    order = open(os.path.join(out, "order")).read().split()
    assert order == list(KINDS)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    expected_status = STATUS_SEEN
    container_mnt = None
    for kind in KINDS:
        rec = parse_record(os.path.join(out, kind))
        assert rec["argv"] == "zero one"         # the args after the script, as given
        # exactly the hook's env: nothing of the runtime's own environment
        # (variables the shell itself maintains aside; busybox ash exports a
        # default PATH when it has none)
        shell_own = ("PWD=", "SHLVL=", "OLDPWD=", "_=", "PATH=/sbin:/usr/sbin:/bin:/usr/bin")
        own = [e for e in rec["env"].split() if not e.startswith(shell_own)]
        assert own == [f"HOOK_KIND={kind}"], (kind, rec["env"])
        assert rec["state"]["id"] == cid
        assert rec["state"]["status"] == expected_status[kind], kind
        if kind in IN_CONTAINER:
            assert rec["mnt"] != host_mnt, kind
            container_mnt = container_mnt or rec["mnt"]
            assert rec["mnt"] == container_mnt
        else:
            assert rec["mnt"] == host_mnt, kind
        if kind != "poststop":
            assert rec["state"]["pid"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_each_hook_alone_sees_its_status(env, kind):
    """One hook of one kind per container: the state on its stdin has the
    status that kind is given, whatever other hooks there are (none)."""
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["true"])
    add_out_mount(bundle, out)
    with_hooks(bundle, {kind: [recording_hook(kind, out)]})
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    rt("wait", cid, timeout=20)
    rt("delete", cid)
    state = parse_record(os.path.join(out, kind))["state"]
    assert state["id"] == cid and state["status"] == STATUS_SEEN[kind], state
    assert state["bundle"] == bundle
    if kind == "poststop":
        assert state["pid"] == 0  # no process any more
    else:
        assert state["pid"] > 0


def test_hook_argv0_is_passed_as_given(env):
    """busybox runs the applet named by argv[0]: the file exists only if
    args[0] reached the hook verbatim (not replaced by the path)."""
    marker = os.path.join(env.tmp, "touched")
    bundle = env.bundle(["true"])
    with_hooks(bundle, {"prestart": [{"path": "/bin/busybox", "args": ["touch", marker]}]})
    env.rt("run", "--bundle", bundle, env.cid())
    assert os.path.exists(marker)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer", "startContainer"])
def test_failing_hook_fails_the_command_and_leaves_nothing(env, kind):
    """runtime.md: "If any <kind> hook fails, the runtime MUST generate an
    error, stop the container, and continue the lifecycle at step 12"."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"])
    with_hooks(bundle, {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}]})
    created = rt("create", "--bundle", bundle, cid, check=False)
    if kind in ("prestart", "createRuntime", "createContainer"):
        assert created.returncode == 1
        message = created.stderr
    else:
        assert created.returncode == 0, created.stderr
        started = rt("start", cid, check=False)
        assert started.returncode == 1
        message = started.stderr
    assert kind in message and "exit status 3" in message and "broken" in message
    assert "Traceback" not in message
    assert os.listdir(env.root) == []


@pytest.mark.parametrize("kind", ["startContainer", "poststart", "poststop"])
def test_a_hook_that_exits_without_reading_its_stdin(env, kind):
    """With a state larger than a pipe's buffer, writing it to a hook that
    exits at once surely meets EPIPE and SIGPIPE. Bugs: in the workload's
    child (startContainer; default signal handlers) SIGPIPE killed the
    child unseen and `start` succeeded; in `run` (which forwards SIGPIPE
    through a pidfd closed by then) a poststop warning read "bad file
    descriptor"."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"] if kind != "poststop" else ["true"])
    config = read_config(bundle)
    config["annotations"] = {"io.example.big": "x" * (100 << 10)}
    config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo gone >&2; exit 4"]}]}
    write_config(bundle, config)
    if kind == "poststop":
        assert rt("run", "--bundle", bundle, cid).returncode == 0
        assert log_warnings(env) == ["error running poststop hook #0 (/bin/sh): exit status 4: gone"]
        return
    rt("create", "--bundle", bundle, cid)
    started = rt("start", cid, check=False)
    if kind == "startContainer":
        assert started.returncode == 1 and "exit status 4: gone" in started.stderr, started.stderr
        assert os.listdir(env.root) == []
    else:
        assert started.returncode == 0, started.stderr
        assert log_warnings(env) == ["error running poststart hook #0 (/bin/sh): exit status 4: gone"]
        rt("delete", "--force", cid)


def test_hook_timeout_kills_it(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["true"])
    with_hooks(bundle, {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]})
    started = time.monotonic()
    result = rt("create", "--bundle", bundle, cid, check=False)
    assert time.monotonic() - started < 1 + 1.5
    assert result.returncode == 1 and "timeout executing hook" in result.stderr
    assert os.listdir(env.root) == []


def log_warnings(env):
    return [e["msg"] for e in map(json.loads, open(env.rt.log)) if e["level"] == "warning"]


def test_failing_poststart_is_a_warning_and_start_succeeds(env):
    """runtime.md: "If any poststart hook fails, the runtime MUST log a
    warning, but the remaining hooks and lifecycle continue as if the hook
    had succeeded"."""
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["sleep", "1000"])
    with_hooks(bundle, {"poststart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/second"]},
        {"path": "/nonexistent/hook"},
        {"path": "/bin/sh", "args": ["sh", "-c", f"touch {out}/fourth"]}]})
    rt("create", "--bundle", bundle, cid)
    started = rt("start", cid, check=False)
    assert started.returncode == 0, started.stderr
    assert json.load(open(os.path.join(out, "second")))["status"] == "running"  # the rest still ran
    assert os.path.exists(os.path.join(out, "fourth"))
    assert json.loads(rt("state", cid).stdout)["status"] == "running"  # and the container lives
    warnings = log_warnings(env)
    assert "error running poststart hook #0 (/bin/sh): exit status 3: broken" in warnings, warnings
    assert any(w.startswith("error running poststart hook #2 (/nonexistent/hook): ") for w in warnings)
    assert len(warnings) == 2, warnings
    rt("delete", "--force", cid)


def test_failing_start_container_hook_still_runs_poststop(env):
    """runtime.md, startContainer failure: "... stop the container, and
    continue the lifecycle at step 12" - destroy, then (step 13) the
    poststop hooks."""
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["sleep", "1000"])
    with_hooks(bundle, {"startContainer": [{"path": "/bin/false"}],
                        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/poststop"]}]})
    rt("create", "--bundle", bundle, cid)
    assert rt("start", cid, check=False).returncode == 1
    assert json.load(open(os.path.join(out, "poststop")))["status"] == "stopped"
    assert os.listdir(env.root) == []


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_creation_hook_still_runs_poststop(env, kind):
    """runtime.md: "If any <kind> hook fails, the runtime MUST generate an
    error, stop the container, and continue the lifecycle at step 12" -
    and step 13 invokes the poststop hooks (runc 1.1.5 does, measured)."""
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["sleep", "1000"])
    with_hooks(bundle, {kind: [{"path": "/bin/false"}],
                        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/poststop"]}]})
    assert rt("create", "--bundle", bundle, cid, check=False).returncode == 1
    assert os.listdir(env.root) == []
    assert json.load(open(os.path.join(out, "poststop")))["status"] == "stopped"


def test_failing_poststop_is_a_warning(env):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["true"])
    with_hooks(bundle, {"poststop": [{"path": "/bin/false"},
                                     {"path": "/bin/sh", "args": ["sh", "-c", f"touch {out}/second"]}]})
    rt("run", "--bundle", bundle, cid)
    assert os.path.exists(os.path.join(out, "second"))  # the rest still ran
    assert log_warnings(env) == ["error running poststop hook #0 (/bin/false): exit status 1"]


def test_poststop_exactly_once_under_concurrent_deletes(env):
    rt = env.rt
    out = os.path.join(env.tmp, "poststop.log")
    for round_ in range(20):
        cid = env.cid(f"r{round_}")
        bundle = env.bundle(["sleep", "1000"])
        with_hooks(bundle, {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {cid} >> {out}"]}]})
        rt("create", "--bundle", bundle, cid)
        rt("start", cid)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda _: rt("delete", "--force", cid, check=False), range(10)))
        assert [r.returncode for r in results] == [0] * 10, [r.stderr for r in results]
        assert open(out).read().split().count(cid) == 1
        second = rt("delete", cid, check=False)
        assert second.returncode == 1 and "does not exist" in second.stderr
        assert rt("delete", "--force", cid).returncode == 0
        assert open(out).read().split().count(cid) == 1
