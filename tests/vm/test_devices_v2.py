"""The cgroup v2 device filter where only it can enforce device rules: the
pure v2 guest. (What a container may open is proven by
tests/integration/test_devices.py, which runs here too: `bash
tests/vm/run.sh tests/integration/test_devices.py`.)

Here: the program sits on the container's own cgroup, one at a time
through updates; `features` says so; and a caller that cannot load it
(no CAP_BPF, no CAP_SYS_ADMIN) gets its device rules refused at create in
one line, leaving nothing behind."""

import json
import os
import subprocess

from runsc_py.linux import bpf
from tests.support.busybox import default_config
from tests.support.leaks import leaked_processes
from tests.support.runtime import RUNTIME, wait_until

TIMEOUT = 180  # qemu's TCG: one `run` takes ~20 s
DENY_ALL = {"allow": False, "access": "rwm"}


def config(args, devices):
    cfg = default_config(args)
    cfg["linux"]["resources"] = {"devices": devices}
    return cfg


def programs_of(env, cid):
    """The device programs attached to the container's own cgroup."""
    pid = env.rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line.rstrip("\n").split(":", 2)[2] for line in f if line.startswith("0::"))
    fd = os.open(f"/sys/fs/cgroup{path}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bpf.attached(fd)
    finally:
        os.close(fd)


def test_one_program_on_the_container_cgroup_through_updates(env, tmp_path):
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", env.bundle(config=config(["sleep", "600"], [DENY_ALL])), cid,
       timeout=TIMEOUT)
    first = programs_of(env, cid)
    assert len(first) == 1
    doc = tmp_path / "devices.json"
    doc.write_text(json.dumps({"devices": [DENY_ALL, {"allow": True, "type": "b", "major": 7, "access": "r"}]}))
    rt("update", "-r", str(doc), cid, timeout=TIMEOUT)
    second = programs_of(env, cid)
    assert len(second) == 1 and second != first
    doc.write_text(json.dumps({"devices": [{"allow": True, "access": "rwm"}]}))
    rt("update", "-r", str(doc), cid, timeout=TIMEOUT)
    assert programs_of(env, cid) == []  # allows everything: no program at all
    rt("kill", cid, "KILL", timeout=TIMEOUT)
    wait_until(lambda: rt.status(cid) == "stopped", TIMEOUT, "the container to stop")
    rt("delete", cid, timeout=TIMEOUT)


def test_features_name_the_ebpf_filter(env):
    features = json.loads(env.rt("features", timeout=TIMEOUT).stdout)
    assert features["annotations"]["io.github.runsc-py.devices"] == "cgroup v2 eBPF device filter"


def test_device_rules_are_refused_without_the_capability_to_load_the_filter(env):
    """setpriv drops CAP_BPF and CAP_SYS_ADMIN from the caller: the plan
    (before anything is made) cannot load the program."""
    cid = env.cid("nocap")
    bundle = env.bundle(config=config(["true"], [DENY_ALL]))
    argv = ["setpriv", "--inh-caps=-bpf,-sys_admin", "--bounding-set=-bpf,-sys_admin", "--"] + RUNTIME + [
        "--root", env.root, "create", "--bundle", bundle, cid]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        "runsc-py: linux.resources.devices: the cgroup v2 eBPF device filter cannot be loaded: operation not "
        "permitted (it needs CAP_BPF or CAP_SYS_ADMIN in the host's user namespace)"], result.stderr
    assert not os.path.isdir(env.root) or os.listdir(env.root) == []
    assert leaked_processes(env.token) == []
