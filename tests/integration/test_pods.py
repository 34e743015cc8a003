"""Multi-container sandboxes (pods) the way CRI drives them: a pause
container with `container-type: sandbox`, members with `container-type:
container` and the sandbox's id, sharing its ipc/uts/net namespaces by
path; and the sandbox's OOM score over its members."""

import json
import os
import signal
import subprocess

import pytest

from tests.support.runtime import reap_orphans, wait_for_exit, wait_until

CRI_TYPE = "io.kubernetes.cri.container-type"
CRI_SANDBOX = "io.kubernetes.cri.sandbox-id"


class Pod:
    def __init__(self, env):
        self.env = env
        self.rt = env.rt
        self.sid = env.cid("pod")

    def create_sandbox(self, **process):
        bundle = self.env.bundle(["sleep", "1000"], **process)
        _annotate(bundle, {CRI_TYPE: "sandbox"})
        self.rt("create", "--bundle", bundle, self.sid)
        self.pid = self.rt.state(self.sid)["pid"]
        return bundle

    def member_bundle(self, args, **process):
        bundle = self.env.bundle(args, **process)
        config = _config(bundle)
        config["annotations"] = {CRI_TYPE: "container", CRI_SANDBOX: self.sid}
        shared = {"ipc": "ipc", "uts": "uts", "network": "net"}
        config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}] + [
            {"type": kind, "path": f"/proc/{self.pid}/ns/{name}"} for kind, name in shared.items()]
        config.pop("hostname", None)  # the pod's uts namespace is the sandbox's to name
        _write(bundle, config)
        return bundle

    def add(self, name, args=("sleep", "1000"), **process):
        cid = self.env.cid(name)
        self.rt("create", "--bundle", self.member_bundle(list(args), **process), cid)
        return cid

    def oom(self):
        return _oom(self.pid)


def _config(bundle):
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def _write(bundle, config):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)


def _annotate(bundle, annotations):
    config = _config(bundle)
    config["annotations"] = annotations
    _write(bundle, config)


def _oom(pid):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def _gofer_of(env, cid):
    """The gofer's pid, from the container's record in the root."""
    for name in os.listdir(env.root):
        if name.startswith(f"{cid}_sandbox:") and name.endswith(".state"):
            with open(os.path.join(env.root, name)) as f:
                return json.load(f)["gofer"]["pid"]
    raise AssertionError(f"no record of {cid}")


def _can_lower_oom_score():
    """Lowering oom_score_adj below 0 needs CAP_SYS_RESOURCE, which some
    hosts (this CI machine) do not grant even to root."""
    import prctl
    return prctl.cap_effective.sys_resource


@pytest.fixture
def pod(env):
    return Pod(env)


def test_member_shares_the_pods_namespaces_and_is_the_sandboxs_child(env, pod):
    pod.create_sandbox()
    cid = pod.add("m1")
    state = env.rt.state(cid)
    assert state["status"] == "created" and state["pid"] > 0
    member = state["pid"]
    for name in ("ipc", "uts", "net"):
        assert os.readlink(f"/proc/{member}/ns/{name}") == os.readlink(f"/proc/{pod.pid}/ns/{name}")
    assert os.readlink(f"/proc/{member}/ns/mnt") != os.readlink(f"/proc/{pod.pid}/ns/mnt")
    # Sandboxes are outside their containers' pid namespaces: the member's
    # (its own here) is neither the pod's nor the runtime's.
    own = os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{member}/ns/pid") == os.readlink(f"/proc/{pod.pid}/ns/pid") == own
    assert own != os.readlink(f"/proc/{member}/ns/pid_for_children") != \
        os.readlink(f"/proc/{pod.pid}/ns/pid_for_children") != own
    with open(f"/proc/{member}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == pod.pid  # its parent is the pod's sandbox
    env.rt("delete", "--force", pod.sid)


def test_member_output_exit_status_and_exec(env, pod):
    pod.create_sandbox()
    env.rt("start", pod.sid)
    out = os.path.join(env.tmp, "member.out")
    cid = env.cid("m")
    bundle = pod.member_bundle(["sh", "-c", "read line; echo got $line; hostname; exit 7"])
    with open(out, "w") as stdout, open(os.path.join(env.tmp, "in"), "w+") as stdin:
        stdin.write("hello\n")
        stdin.seek(0)
        # The caller's stdio is the member's, as with any container.
        created = subprocess.run(env.rt.argv("create", "--bundle", bundle, cid), stdin=stdin, stdout=stdout,
                                 stderr=stdout, timeout=30)
        reap_orphans()
        assert created.returncode == 0, open(out).read()
    env.rt("start", cid)
    assert json.loads(env.rt("wait", cid, timeout=20).stdout) == {"id": cid, "exitStatus": 7}
    lines = open(out).read().split()
    assert lines[:2] == ["got", "hello"]
    assert env.rt.status(cid) == "stopped"
    env.rt("delete", cid)
    assert env.rt.status(pod.sid) == "running"

    cid = pod.add("x")
    env.rt("start", cid)
    seen = env.rt("exec", cid, "ps", "-o", "pid,args").stdout
    # The member's own processes, not the pod's, and none of the runtime's.
    rows = [line.split(None, 1) for line in seen.splitlines()[1:]]
    assert rows[0] == ["1", "sleep 1000"] and len(rows) == 2 and "runsc-py" not in seen, seen
    env.rt("delete", "--force", pod.sid)


def test_pod_lifecycle_in_mixed_order(env, pod):
    rt = env.rt
    pod.create_sandbox()
    members = [pod.add(f"m{i}") for i in range(3)]
    listed = {row["id"]: row["status"] for row in json.loads(rt("list", "--format", "json").stdout)}
    assert listed == {pod.sid: "created", **{m: "created" for m in members}}
    rt("start", members[1])
    rt("start", pod.sid)
    rt("start", members[0])
    assert [rt.status(m) for m in members] == ["running", "running", "created"]

    pids = json.loads(rt("ps", "--format", "json", pod.sid).stdout)
    for m in members:
        assert rt.state(m)["pid"] in pids  # the pod's processes include its members'

    first = rt.state(members[0])["pid"]
    rt("kill", members[0], "KILL")
    assert wait_for_exit(first, 10)
    assert rt.status(members[0]) == "stopped" and rt.status(members[1]) == "running"
    rt("delete", members[0])
    rt("kill", members[2], "TERM")  # created: its process ends without ever running
    wait_until(lambda: rt.status(members[2]) == "stopped", 10, "the killed created member to stop")
    listed = {row["id"]: row["status"] for row in json.loads(rt("list", "--format", "json").stdout)}
    assert listed == {pod.sid: "running", members[1]: "running", members[2]: "stopped"}

    rt("delete", "--force", pod.sid)  # takes the remaining members with it
    assert json.loads(rt("list", "--format", "json").stdout) == []
    assert not os.listdir(env.root)


def test_killing_a_members_gofer_stops_only_that_member(env, pod):
    rt = env.rt
    pod.create_sandbox()
    rt("start", pod.sid)
    doomed, other = pod.add("doomed"), pod.add("other")
    rt("start", doomed)
    rt("start", other)
    doomed_pid = rt.state(doomed)["pid"]
    os.kill(_gofer_of(env, doomed), signal.SIGKILL)
    assert wait_for_exit(doomed_pid, 10)
    assert rt.status(doomed) == "stopped"
    assert rt.status(other) == "running" and rt.status(pod.sid) == "running"

    os.kill(_gofer_of(env, pod.sid), signal.SIGKILL)  # the sandbox's gofer: the whole pod goes
    assert wait_for_exit(pod.pid, 10)
    wait_until(lambda: rt.status(other) == "stopped", 10, "the member to stop with its pod")
    rt("delete", "--force", pod.sid)
    assert not os.listdir(env.root)


def test_member_needs_its_sandbox(env, pod):
    pod.pid = os.getpid()  # namespace paths must resolve; the sandbox itself is missing
    bundle = pod.member_bundle(["true"])
    result = env.rt("create", "--bundle", bundle, env.cid("orphan"), check=False)
    assert result.returncode == 1
    assert f'its sandbox "{pod.sid}" does not exist' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(env.root) or not os.listdir(env.root)


def test_member_id_is_unique_in_the_root(env, pod):
    pod.create_sandbox()
    cid = pod.add("m")
    again = env.rt("create", "--bundle", pod.member_bundle(["true"]), cid, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr, again.stderr
    taken = env.rt("create", "--bundle", pod.member_bundle(["true"]), pod.sid, check=False)
    assert taken.returncode == 1 and "already exists" in taken.stderr, taken.stderr
    env.rt("delete", "--force", pod.sid)


def test_deleting_the_sandbox_runs_every_members_poststop_once(env, pod):
    out = os.path.join(env.tmp, "poststop")
    pod.create_sandbox()
    env.rt("start", pod.sid)
    members = []
    for i in range(2):
        cid = env.cid(f"m{i}")
        bundle = pod.member_bundle(["sleep", "1000"])
        config = _config(bundle)
        config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {cid} >> {out}"]}]}
        _write(bundle, config)
        env.rt("create", "--bundle", bundle, cid)
        env.rt("start", cid)
        members.append(cid)
    env.rt("delete", "--force", pod.sid)
    assert sorted(open(out).read().split()) == sorted(members)
    assert env.rt("delete", "--force", members[0]).returncode == 0
    assert sorted(open(out).read().split()) == sorted(members)


def test_sandbox_oom_score_follows_its_members(env, pod):
    """runsc's rule: the sandbox gets the lowest oomScoreAdj of its
    containers (the pause container excepted), recomputed after every start
    and destroy; back to its original value when none sets one. Each gofer
    gets its own container's value."""
    original = _oom(os.getpid())
    low = -200 if _can_lower_oom_score() else 100
    values = {"a": low + 300, "b": low + 700, "low": low}
    pod.create_sandbox()
    env.rt("start", pod.sid)
    assert pod.oom() == original
    members = {}
    for name, value in values.items():
        members[name] = pod.add(name, oomScoreAdj=value)
        env.rt("start", members[name])
        assert _oom(env.rt.state(members[name])["pid"]) == value
        assert _oom(_gofer_of(env, members[name])) == value
    assert pod.oom() == low
    env.rt("delete", "--force", members.pop("low"))
    assert pod.oom() == values["a"]
    plain = pod.add("plain")  # sets no value: changes nothing
    env.rt("start", plain)
    assert pod.oom() == values["a"]
    for cid in list(members.values()) + [plain]:
        env.rt("delete", "--force", cid)
    assert pod.oom() == original
    env.rt("delete", "--force", pod.sid)


def test_lone_containers_sandbox_and_gofer_take_its_oom_score(env):
    bundle = env.bundle(["sleep", "1000"], oomScoreAdj=321)
    cid = env.cid()
    env.rt("create", "--bundle", bundle, cid)
    assert _oom(env.rt.state(cid)["pid"]) == 321
    assert _oom(_gofer_of(env, cid)) == 321
    env.rt("delete", "--force", cid)


def test_members_sharing_the_pods_pid_namespace_see_its_pause_as_pid_1(env, pod):
    """A pod with one pid namespace (shareProcessNamespace): the members
    name the pod's by its state pid, the sandbox's; they join the pause
    container's, which is PID 1 there; no runtime process is in it."""
    pod.create_sandbox()
    env.rt("start", pod.sid)
    bundle = pod.member_bundle(["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$; "
                                            "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
    config = _config(bundle)
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"] + [
        {"type": "pid", "path": f"/proc/{pod.pid}/ns/pid"}]
    _write(bundle, config)
    out = env.rt("run", "--bundle", bundle, env.cid("shared")).stdout.splitlines()
    assert out[0].strip() == "sleep 1000", out
    assert int(out[1]) > 1, out
    assert "runsc-py" not in out[2], out
