"""linux.resources.devices enforced on the real kernel: by the v1 devices
controller on a v1 or hybrid host, by the eBPF device program on cgroup v2
(the same tests run in the pure v2 guest of tests/vm/).

The workload has CAP_MKNOD (Docker and containerd give it by default), so
it can make a node for any device; what it may open is the cgroup's to
decide. The device is a loop device over a file holding a known string:
reading it through a node the container made proves access, "Operation not
permitted" proves the filter. The program itself is also compared with the
v1 controller, request by request, on a cgroup2 directory of this host.
"""

import json
import os
import random
import socket
import subprocess

import pytest

from runsc_py.cgroups import devicefilter as df
from runsc_py.errors import Failure
from tests.support.busybox import default_config
from tests.support.leaks import leaked_processes
from tests.support.runtime import wait_for_exit, wait_until

# The VM stage's guest may run on qemu's TCG, where one `run` takes ~20 s.
TIMEOUT = 180 if os.environ.get("RUNSC_PY_VM_GUEST") else 30
SECRET = b"runsc-py device test: the loop device's own text\n"
DENY_ALL = {"allow": False, "access": "rwm"}
EPERM = "Operation not permitted"


def block_rule(major, minor=None, access="rwm", allow=True):
    rule = {"allow": allow, "type": "b", "major": major, "access": access}
    if minor is not None:
        rule["minor"] = minor
    return rule


@pytest.fixture
def loop(tmp_path):
    """(path, major, minor) of a loop device over a file starting with SECRET."""
    image = tmp_path / "disk.img"
    image.write_bytes(SECRET + bytes(65536 - len(SECRET)))
    made = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"no loop device: {made.stderr.strip()}")
    path = made.stdout.strip()
    try:
        rdev = os.stat(path).st_rdev
        yield path, os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", path], timeout=30)


def config(script, devices, terminal=False):
    """The default config with CAP_MKNOD and `devices` as the device rules."""
    cfg = default_config(["sh", "-c", script], terminal=terminal)
    for name in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][name].append("CAP_MKNOD")
    cfg["linux"]["resources"] = {"devices": devices}
    return cfg


def run(env, cfg, name="c"):
    return env.rt("run", "--bundle", env.bundle(config=cfg), env.cid(name), check=False, timeout=TIMEOUT)


def read_block(major, minor):
    """A script: make /dev/hd for the device, read it, say how that went."""
    return f"mknod /dev/hd b {major} {minor} && echo made; head -c {len(SECRET)} /dev/hd; echo read=$?"


# -- a container's view ------------------------------------------------------------------------

def test_deny_all_keeps_the_block_device_out_and_the_defaults_in(env, loop):
    _path, major, minor = loop
    script = (read_block(major, minor) + "; echo x > /dev/null && echo null=ok"
              "; head -c 5 /dev/zero | wc -c; head -c 7 /dev/urandom | wc -c; head -c 3 /dev/random | wc -c"
              "; echo x > /dev/full; echo full=$?"
              # No controlling terminal here: /dev/tty is the driver's ENXIO, not the filter's EPERM.
              "; true < /dev/tty; mknod /dev/p c 136 77 && echo made-pts && true < /dev/p"
              # The control: /dev/mem is no default device.
              "; mknod /dev/m c 1 1 && head -c 1 /dev/m; echo mem=$?")
    result = run(env, config(script, [DENY_ALL]))
    out, err = result.stdout, result.stderr
    assert SECRET.decode() not in out
    assert "made" in out and "read=1" in out and f"/dev/hd: {EPERM}" in err, (out, err)
    assert "null=ok" in out and out.split().count("5") == 1 and "7" in out.split() and "3" in out.split(), out
    assert "No space left on device" in err and "full=1" in out, (out, err)  # opened; the driver says full
    assert "/dev/tty: No such device or address" in err, err
    assert "made-pts" in out and f"/dev/p: {EPERM}" not in err, err      # /dev/pts/*: the pty driver's to answer
    assert f"/dev/m: {EPERM}" in err and "mem=1" in out, (out, err)


def test_an_allow_rule_after_deny_all_opens_the_block_device(env, loop):
    _path, major, minor = loop
    out = run(env, config(read_block(major, minor), [DENY_ALL, block_rule(7)])).stdout
    assert SECRET.decode() in out and "read=0" in out
    # The same rule for another major, or without read access, does not.
    for rules in ([DENY_ALL, block_rule(8)], [DENY_ALL, block_rule(7, access="wm")],
                  [DENY_ALL, block_rule(7, minor), block_rule(7, minor, "r", allow=False)]):
        result = run(env, config(read_block(major, minor), rules), name="again")
        assert SECRET.decode() not in result.stdout and f"/dev/hd: {EPERM}" in result.stderr, (rules, result)


def test_linux_devices_are_usable_whatever_the_rules(env, loop):
    path, major, minor = loop
    cfg = config(f"head -c {len(SECRET)} /dev/disk; echo read=$?", [DENY_ALL])
    cfg["linux"]["devices"] = [{"path": "/dev/disk", "type": "b", "major": major, "minor": minor,
                                "fileMode": 0o600, "uid": 0, "gid": 0}]
    result = run(env, cfg)
    assert SECRET.decode() in result.stdout and "read=0" in result.stdout, result


def test_the_terminal_and_dev_pts_work_under_deny_all(env):
    rt, cid = env.rt, env.cid()
    script = "t=$(tty); echo tty=$t; echo via-dev-tty > /dev/tty; echo via-pts > $t; echo done"
    bundle = env.bundle(config=config(script, [DENY_ALL], terminal=True))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(env.tmp, "console.sock"))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    try:
        rt("create", "--bundle", bundle, "--console-socket", os.path.join(env.tmp, "console.sock"), cid,
           timeout=TIMEOUT)
        conn, _ = listener.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    finally:
        listener.close()
    master = fds[0]
    try:
        pid = rt.state(cid)["pid"]
        rt("start", cid, timeout=TIMEOUT)
        assert wait_for_exit(pid, TIMEOUT)
        output = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last slave closed
                break
            if not data:
                break
            output += data
    finally:
        os.close(master)
    text = output.decode(errors="replace").replace("\r", "")
    assert "tty=/dev/pts/" in text and "via-dev-tty" in text and "via-pts" in text and "done" in text, text
    assert EPERM not in text, text
    rt("delete", cid, timeout=TIMEOUT)


def test_update_changes_what_the_running_container_may_open(env, loop, tmp_path):
    _path, major, minor = loop
    rt, cid = env.rt, env.cid()
    script = f"mknod /dev/hd b {major} {minor} && touch /tmp/ready; exec sleep 600"
    bundle = env.bundle(config=config(script, [DENY_ALL]))
    rt("run", "--detach", "--bundle", bundle, cid, timeout=TIMEOUT)
    wait_until(lambda: os.path.exists(os.path.join(bundle, "rootfs", "tmp", "ready")), TIMEOUT, "the node")

    def read():
        return rt("exec", cid, "head", "-c", str(len(SECRET)), "/dev/hd", check=False, timeout=TIMEOUT)

    def update(rules):
        doc = tmp_path / "resources.json"
        doc.write_text(json.dumps({"devices": rules}))
        return rt("update", "-r", str(doc), cid, check=False, timeout=TIMEOUT)

    before = read()
    assert before.returncode != 0 and EPERM in before.stderr, before
    filter_before = device_filter(env, cid)
    assert update([DENY_ALL, block_rule(major)]).returncode == 0
    after = read()
    assert after.returncode == 0 and after.stdout == SECRET.decode(), after
    assert device_filter(env, cid) != filter_before
    saved = saved_devices(env, cid)
    assert saved == [DENY_ALL, block_rule(major)]
    # A rule the kernel would ignore is refused, and nothing changes.
    refused = update([DENY_ALL, block_rule(major), block_rule(major, minor, "r", allow=False)])
    assert refused.returncode == 1 and "would be ignored" in refused.stderr and "Traceback" not in refused.stderr
    assert read().returncode == 0 and saved_devices(env, cid) == saved
    # Narrower again: the read fails, the defaults still work.
    assert update([DENY_ALL, block_rule(major, minor, "w")]).returncode == 0
    again = read()
    assert again.returncode != 0 and EPERM in again.stderr, again
    assert rt("exec", cid, "sh", "-c", "echo x > /dev/null && head -c 3 /dev/zero | wc -c",
              timeout=TIMEOUT).stdout.strip() == "3"
    rt("kill", cid, "KILL", timeout=TIMEOUT)
    wait_until(lambda: rt.status(cid) == "stopped", TIMEOUT, "the container to stop")
    rt("delete", cid, timeout=TIMEOUT)


def refused_at_create(env, cfg, *needles):
    """Like tests.support.confined.assert_refused, with the guest's timeout."""
    cid = env.cid("refused")
    result = env.rt("create", "--bundle", env.bundle(config=cfg), cid, check=False, timeout=TIMEOUT)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert not os.path.isdir(env.root) or os.listdir(env.root) == []
    assert leaked_processes(env.token) == []


def test_rules_the_kernel_would_ignore_are_refused_at_create(env):
    hole = [DENY_ALL, {"allow": True, "type": "c", "access": "rw"},
            {"allow": False, "type": "c", "major": 4, "minor": 1, "access": "rwm"}]
    refused_at_create(env, config("true", hole), "linux.resources.devices[2]: deny c 4:1 rwm would be ignored",
                      "inside the wider rule allow c *:* rw")
    default_in_wildcard = [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "access": "rw"}]
    refused_at_create(env, config("true", default_in_wildcard), "/dev/null", "would be ignored")


# -- where the filter is ----------------------------------------------------------------------

def _container_cgroup(env, cid, v1_controller=None):
    pid = env.rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split(" - ")[1].split()[0], line.split(" - ")[1].split()[2].split(","), line.split()[4])
                  for line in f]
    for _hid, controllers, path in lines:
        if v1_controller is None and not controllers:
            mountpoint = next(m for fstype, _o, m in mounts if fstype == "cgroup2")
            return mountpoint + path
        if v1_controller is not None and v1_controller in controllers.split(","):
            mountpoint = next(m for fstype, opts, m in mounts if fstype == "cgroup" and v1_controller in opts)
            return mountpoint + path
    return None


def device_filter(env, cid):
    """What enforces the container's device rules: its v1 devices.list, or
    the ids of the device programs on its cgroup v2 directory."""
    v1 = _container_cgroup(env, cid, "devices")
    if v1 is not None:
        with open(os.path.join(v1, "devices.list")) as f:
            return ("v1", f.read())
    from runsc_py.linux import bpf
    fd = os.open(_container_cgroup(env, cid), os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = bpf.attached(fd)
    finally:
        os.close(fd)
    assert len(ids) == 1, ids  # one program, the old one detached after the new one came
    return ("v2", ids)


def saved_devices(env, cid):
    with open(os.path.join(env.root, f"{cid}_sandbox:{cid}.spec")) as f:
        return json.load(f)["linux"]["resources"]["devices"]


def test_the_filter_matches_the_policy(env):
    rt, cid = env.rt, env.cid()
    rules = [DENY_ALL, block_rule(7, 3, "r"), {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    rt("run", "--detach", "--bundle", env.bundle(config=config("exec sleep 600", rules)), cid, timeout=TIMEOUT)
    kind, found = device_filter(env, cid)
    if kind == "v1":
        listed = sorted(found.split("\n")[:-1])
        want = sorted(df.Rule(True, *key, bits).line() for key, bits in df.emulate(df.sequence(rules)).exceptions.items())
        assert listed == want
    else:
        assert len(found) == 1
    rt("kill", cid, "KILL", timeout=TIMEOUT)
    wait_until(lambda: rt.status(cid) == "stopped", TIMEOUT, "the container to stop")
    rt("delete", cid, timeout=TIMEOUT)


# -- the program against the v1 controller --------------------------------------------------------

NODES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 9), ("c", 5, 0), ("c", 136, 3), ("c", 10, 200), ("c", 240, 1),
         ("b", 7, 0), ("b", 7, 1), ("b", 240, 0), ("b", 240, 3)]
OPENS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}


def _vocabulary(rng):
    kind = rng.choice("abcc")
    entry = {"allow": rng.random() < 0.6, "type": kind,
             "access": "".join(c for c in "rwm" if rng.random() < 0.6) or "r"}
    if rng.random() < 0.7:
        entry["major"] = rng.choice([1, 7, 136, 240, 5])
    if rng.random() < 0.5:
        entry["minor"] = rng.choice([0, 1, 3, 9])
    return entry


def _probe(cgroup_procs, nodes_dir, out):
    """In a child: join the cgroups, try every node with every access."""
    pid = os.fork()
    if pid == 0:
        try:
            for procs in cgroup_procs:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            verdicts = []
            for kind, major, minor in NODES:
                node = os.path.join(nodes_dir, f"{kind}{major}-{minor}")
                for access, flags in OPENS.items():
                    try:
                        os.close(os.open(node, flags | os.O_NONBLOCK | os.O_NOCTTY))
                        verdicts.append(True)
                    except OSError as e:
                        verdicts.append(e.errno != 1)
                made = os.path.join(nodes_dir, f"m-{os.getpid()}")
                try:
                    os.mknod(made, (0o600 | (0o60000 if kind == "b" else 0o20000)), os.makedev(major, minor))
                    os.unlink(made)
                    verdicts.append(True)
                except OSError as e:
                    verdicts.append(e.errno != 1)
            os.write(out, json.dumps(verdicts).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _decisions(cgroup_procs, nodes_dir):
    r, w = os.pipe()
    try:
        _probe(cgroup_procs, nodes_dir, w)
        os.close(w)
        w = None
        return json.loads(os.read(r, 1 << 16))
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def test_the_v2_program_decides_like_the_v1_controller(env, tmp_path):
    """Random rule lists: the kernel's v1 controller, our program attached to
    a cgroup2 directory, and Policy.allows agree on every request."""
    v1_root, v2_root = "/sys/fs/cgroup/devices", "/sys/fs/cgroup/unified"
    if not os.path.exists(f"{v1_root}/devices.list") or not os.path.exists(f"{v2_root}/cgroup.procs"):
        pytest.skip("needs the v1 devices controller and a cgroup2 hierarchy side by side (a hybrid host)")
    with open("/proc/self/cgroup") as f:
        if "devices:/\n" not in f.read():
            pytest.skip("the test process is not in the root devices cgroup")
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=700", "devnodes", str(nodes)], check=True, timeout=30)
    v1_dir, v2_dir = f"{v1_root}/{env.token}-v1", f"{v2_root}/{env.token}-v2"
    try:
        for kind, major, minor in NODES:
            os.mknod(nodes / f"{kind}{major}-{minor}", 0o600 | (0o60000 if kind == "b" else 0o20000),
                     os.makedev(major, minor))
        rng = random.Random(16)
        compared, outcomes = 0, set()
        while compared < 40:
            entries = [_vocabulary(rng) for _ in range(rng.randint(1, 5))]
            try:
                rules = df.sequence(entries)
                policy = df.emulate(rules)
            except Failure:
                continue  # a rule the kernel would ignore: refused, nothing to compare
            os.mkdir(v1_dir)
            os.mkdir(v2_dir)
            try:
                for rule in rules:
                    with open(f"{v1_dir}/devices.{'allow' if rule.allow else 'deny'}", "w") as f:
                        f.write(rule.line())
                if not policy.allows_all():
                    df.install(v2_dir, df.Program(policy).load())
                kernel_v1 = _decisions([f"{v1_dir}/cgroup.procs"], str(nodes))
                program = _decisions([f"{v2_dir}/cgroup.procs"], str(nodes))
            finally:
                os.rmdir(v1_dir)
                os.rmdir(v2_dir)
            expected = []
            for kind, major, minor in NODES:
                for access in OPENS:
                    expected.append(policy.allows(kind, major, minor, sum(df.ACCESS[c] for c in access)))
                expected.append(policy.allows(kind, major, minor, df.ACCESS["m"]))
            assert kernel_v1 == expected, (entries, kernel_v1, expected)
            assert program == expected, (entries, program, expected)
            compared += 1
            outcomes.update(expected)
        assert outcomes == {True, False}  # both verdicts were seen: the comparison can fail
    finally:
        subprocess.run(["umount", str(nodes)], timeout=30)
        for path in (v1_dir, v2_dir):
            if os.path.isdir(path):
                os.rmdir(path)
