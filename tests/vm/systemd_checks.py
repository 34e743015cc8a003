"""The systemd cgroup driver against a real systemd: run inside the VM
stage's systemd guest (tests/vm/systemd_guest.sh runs this file in
systemd's namespaces, as root, on a pure cgroup v2 kernel), never on the
CI host itself. SYSTEMD_CHECKS_BUS says how the runtime must reach
systemd: `private` (no bus daemon: /run/systemd/private) or `bus` (the
system bus, which podman and containerd use too).

Every test has its own --root under a tmpfs and removes its containers;
units and cgroups left behind fail the test that left them."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.support.busybox import default_config, make_rootfs  # noqa: E402

RUNTIME = os.path.join(REPO, ".venv", "bin", "runsc-py")
BUS = os.environ.get("SYSTEMD_CHECKS_BUS", "private")
SOCKET = {"private": "/run/systemd/private", "bus": "/run/dbus/system_bus_socket"}[BUS]
TIMEOUT = 300  # s per command: under qemu's TCG a CLI call takes seconds, an engine's run a minute
CG = "/sys/fs/cgroup"
STOP_TIMEOUT = 180

pytestmark = pytest.mark.skipif(not os.path.exists("/run/systemd/private"),
                                reason="needs the VM stage's systemd guest (tests/vm/systemd_guest.sh)")


def sh(*argv, check=True, **kw):
    """Run a command, its output in files: a container's processes inherit
    them, and a pipe would stay open as long as the container lives."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.run(argv, stdout=out, stderr=err, timeout=TIMEOUT, **kw).returncode
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(argv, code, out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} -> {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def show(unit, *props):
    out = sh("systemctl", "show", unit, *[f"-p{p}" for p in props]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_gone(unit):
    """Neither loaded nor failed: systemd forgot it."""
    state = show(unit, "LoadState", "ActiveState")
    return state.get("LoadState") == "not-found" and state.get("ActiveState") in ("inactive", None)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    return make_rootfs(str(tmp_path_factory.mktemp("rootfs") / "rootfs"))


class Env:
    def __init__(self, tmp, rootfs):
        self.tmp = tmp
        self.root = os.path.join(tmp, "root")
        self.log = os.path.join(tmp, "runtime.log")
        self.rootfs = rootfs
        self.ids = []
        self.units = []

    def rt(self, *args, check=True, systemd=True):
        flags = ["--root", self.root, "--debug", "--log", self.log] + (["--systemd-cgroup"] if systemd else [])
        return sh(RUNTIME, *flags, *args, check=check)

    def bundle(self, args=("sleep", "1000"), cgroups_path=None, resources=None, annotations=None):
        path = os.path.join(self.tmp, f"bundle{len(os.listdir(self.tmp))}")
        os.makedirs(path)
        config = default_config(args)
        config["root"] = {"path": self.rootfs, "readonly": True}
        if cgroups_path is not None:
            config["linux"]["cgroupsPath"] = cgroups_path
        if resources is not None:
            config["linux"]["resources"] = resources
        if annotations:
            config["annotations"] = annotations
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        return path

    def create(self, cid, unit, **kw):
        self.ids.append(cid)
        self.units.append(unit)
        return self.rt("create", "--bundle", self.bundle(**kw), cid)

    def state(self, cid):
        return json.loads(self.rt("state", cid, systemd=False).stdout)

    def cleanup(self):
        problems = []
        for cid in self.ids:
            self.rt("delete", "--force", cid, check=False)
        for unit in self.units:
            if not unit_gone(unit):
                problems.append(f"unit {unit} is left: {show(unit, 'LoadState', 'ActiveState')}")
                sh("systemctl", "stop", unit, check=False)
                sh("systemctl", "reset-failed", unit, check=False)
        if os.path.isdir(self.root) and os.listdir(self.root):
            problems.append(f"state left in {self.root}: {os.listdir(self.root)}")
        return problems


@pytest.fixture
def env(tmp_path, rootfs):
    e = Env(str(tmp_path), rootfs)
    yield e
    problems = e.cleanup()
    if os.path.exists(e.log):
        with open(e.log) as f:
            print(f"runtime log:\n{f.read()[-8000:]}")  # pytest shows it when the test failed
    assert not problems, problems


def procs(path):
    with open(os.path.join(path, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def test_reaches_systemd_the_expected_way(env):
    env.create("c0", "runsc-py-c0.scope")
    with open(env.log) as f:
        assert f"systemd: connected through {SOCKET}" in f.read()
    env.rt("delete", "--force", "c0")


def test_scope_with_limits_processes_update_and_delete(env):
    resources = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000}}
    env.create("c1", "runsc-py-c1.scope", cgroups_path="system.slice:runsc-py:c1", resources=resources)
    unit = "runsc-py-c1.scope"
    props = show(unit, "ActiveState", "Slice", "Delegate", "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec",
                 "CPUWeight", "ControlGroup", "DefaultDependencies", "MemoryAccounting", "Description")
    assert props["ActiveState"] == "active" and props["Slice"] == "system.slice"
    assert props["Delegate"] == "yes" and props["DefaultDependencies"] == "no" and props["MemoryAccounting"] == "yes"
    assert props["MemoryMax"] == str(64 << 20) and props["TasksMax"] == "50"
    assert props["CPUQuotaPerSecUSec"] == "500ms" and props["CPUWeight"] == "20"
    assert props["ControlGroup"] == "/system.slice/runsc-py-c1.scope"
    assert props["Description"] == "runsc-py container c1"
    path = CG + props["ControlGroup"]
    assert read(path, "memory.max") == str(64 << 20)
    assert read(path, "pids.max") == "50"
    assert read(path, "cpu.max") == "50000 100000"
    sandbox = env.state("c1")["pid"]
    assert sandbox in procs(path)

    env.rt("start", "c1", systemd=False)
    assert env.state("c1")["status"] == "running"
    listed = env.rt("ps", "--format", "json", "c1").stdout
    assert set(json.loads(listed)) <= set(procs(path)) and json.loads(listed)
    stats = json.loads(env.rt("events", "--stats", "c1").stdout)
    assert stats["data"]["memory"]["usage"]["limit"] == 64 << 20
    assert stats["data"]["pids"]["current"] >= 1

    env.rt("pause", "c1")
    assert env.state("c1")["status"] == "paused" and read(path, "cgroup.freeze") == "1"
    env.rt("resume", "c1")
    assert env.state("c1")["status"] == "running"

    env.rt("update", "--memory", "128M", "--pids-limit", "60", "c1")
    props = show(unit, "MemoryMax", "TasksMax")
    assert props == {"MemoryMax": str(128 << 20), "TasksMax": "60"}
    assert read(path, "memory.max") == str(128 << 20) and read(path, "pids.max") == "60"

    before = len(procs(path))
    env.rt("exec", "--detach", "c1", "sleep", "1000", systemd=False)
    assert len(procs(path)) > before  # exec joined the scope

    env.rt("kill", "--all", "c1", "KILL", systemd=False)
    # Bounded generously: under TCG on a loaded host, the sandbox (the
    # container's pid namespace init) took over 40 s to be gone after
    # SIGKILL once, the exec'd process being reaped by systemd first.
    deadline = time.monotonic() + STOP_TIMEOUT
    while env.state("c1")["status"] != "stopped":
        assert time.monotonic() < deadline, f"the container did not stop within {STOP_TIMEOUT}s of kill --all"
        time.sleep(0.5)
    env.rt("delete", "c1")
    assert unit_gone(unit)
    assert not os.path.exists(path)
    env.rt("delete", "--force", "c1")  # a second delete finds nothing and succeeds
    failed = sh("systemctl", "list-units", "--failed", "--all", "--no-legend", "--plain").stdout
    assert "runsc-py" not in failed


def test_default_path_and_dashed_slice(env):
    env.create("c2", "runsc-py-c2.scope")
    assert os.path.isdir(f"{CG}/system.slice/runsc-py-c2.scope")
    env.create("c3", "t-c3.scope", cgroups_path="runscpy-test.slice:t:c3")
    path = f"{CG}/runscpy.slice/runscpy-test.slice/t-c3.scope"
    assert env.state("c3")["pid"] in procs(path)
    assert show("t-c3.scope", "Slice")["Slice"] == "runscpy-test.slice"
    for cid in ("c2", "c3"):
        env.rt("delete", "--force", cid)
    assert unit_gone("runsc-py-c2.scope") and unit_gone("t-c3.scope")
    assert not os.path.exists(path)


def test_annotations_and_cpus(env):
    env.create("c4", "runsc-py-c4.scope", resources={"cpu": {"cpus": "0", "mems": "0"}},
               annotations={"org.systemd.property.CollectMode": "'inactive-or-failed'",
                            "org.systemd.property.TimeoutStopSec": "uint64 17"})
    props = show("runsc-py-c4.scope", "CollectMode", "TimeoutStopUSec", "AllowedCPUs", "AllowedMemoryNodes")
    assert props == {"CollectMode": "inactive-or-failed", "TimeoutStopUSec": "17s", "AllowedCPUs": "0",
                     "AllowedMemoryNodes": "0"}
    assert read(f"{CG}/system.slice/runsc-py-c4.scope", "cpuset.cpus") == "0"
    env.rt("delete", "--force", "c4")


def test_unit_in_use_is_refused_naming_it(env):
    env.create("c5", "x-same.scope", cgroups_path="system.slice:x:same")
    env.ids.append("c6")
    refused = env.rt("create", "--bundle", env.bundle(cgroups_path="system.slice:x:same"), "c6", check=False)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "x-same.scope" in refused.stderr and "UnitExists" in refused.stderr
    assert env.state("c5")["status"] == "created"   # the first container is untouched
    assert env.state("c5")["pid"] in procs(f"{CG}/system.slice/x-same.scope")
    assert show("x-same.scope", "ActiveState")["ActiveState"] == "active"
    assert not os.path.exists(os.path.join(env.root, "c6"))
    env.rt("delete", "--force", "c5")


def test_bad_path_and_unknown_property(env):
    bad = env.rt("create", "--bundle", env.bundle(cgroups_path="/runsc-py/c7"), "c7", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("runsc-py: linux.cgroupsPath: ")
    env.ids.append("c8")
    env.units.append("runsc-py-c8.scope")
    refused = env.rt("create", "--bundle", env.bundle(annotations={"org.systemd.property.NoSuchThing": "true"}),
                     "c8", check=False)
    assert refused.returncode == 1 and "runsc-py-c8.scope" in refused.stderr
    assert refused.stderr.count("\n") == 1
    env.rt("delete", "--force", "c9")  # never existed: succeeds


def test_delete_after_the_processes_are_gone(env):
    """systemd stops an emptied scope by itself: delete finds no unit."""
    env.create("c10", "runsc-py-c10.scope", args=("true",))
    env.rt("start", "c10", systemd=False)
    deadline = time.monotonic() + STOP_TIMEOUT
    while env.state("c10")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env.rt("delete", "c10")
    assert unit_gone("runsc-py-c10.scope")


# -- engines (the system bus only: they talk to systemd through it) -----------------------------------

needs_bus = pytest.mark.skipif(BUS != "bus", reason="engines need the system bus")


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    from tests.e2e.images import write_rootfs_tar
    tar = write_rootfs_tar(str(tmp_path_factory.mktemp("image") / "rootfs.tar"))
    return tar


@needs_bus
def test_podman_default_config(image, tmp_path):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[engine]\nruntime_supports_json = ["runsc-py"]\n\n[engine.runtimes]\nrunsc-py = ["{RUNTIME}"]\n')
    envs = dict(os.environ, CONTAINERS_CONF=str(conf))

    def podman(*args, check=True):
        return sh("podman", "--runtime", "runsc-py", *args, check=check, env=envs)

    assert podman("info", "--format", "{{.Host.CgroupManager}}").stdout.strip() == "systemd"
    podman("import", image, "localhost/busybox")
    try:
        assert podman("run", "--rm", "--network", "none", "localhost/busybox", "echo", "hi").stdout == "hi\n"
        cid = podman("run", "-d", "--network", "none", "--memory", "64m", "--name", "mem",
                     "localhost/busybox", "sleep", "1000").stdout.strip()
        unit = f"libpod-{cid}.scope"
        props = show(unit, "MemoryMax", "ActiveState", "ControlGroup")
        assert props["MemoryMax"] == str(64 << 20) and props["ActiveState"] == "active"
        assert podman("exec", "mem", "echo", "inside").stdout == "inside\n"
        stats = podman("stats", "--no-stream", "--format", "{{.MemUsage}}", "mem").stdout
        assert "64MiB" in stats or "67.11MB" in stats, stats
        podman("stop", "-t", "1", "mem")
        podman("rm", "mem")
        assert unit_gone(unit)
    finally:
        podman("rm", "-f", "-a", check=False)


@needs_bus
def test_containerd_systemd_cgroup(image, tmp_path):
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed")
    from tests.e2e.images import write_oci_archive
    archive = write_oci_archive(str(tmp_path / "image.tar"), image, "localhost/busybox:latest")
    short = tempfile.mkdtemp(dir="/run", prefix="ctrd-")  # a unix socket's path has at most 107 bytes
    state, root = os.path.join(short, "state"), tmp_path / "lib"
    sock = os.path.join(short, "sock")
    (tmp_path / "config.toml").write_text(f'version = 2\nroot = "{root}"\nstate = "{state}"\n'
                                          f'[grpc]\n  address = "{sock}"\n')
    daemon = subprocess.Popen(["containerd", "--config", str(tmp_path / "config.toml")],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "containerd.log", "w"))
    ctr = ["ctr", "--address", sock, "--namespace", "checks"]
    try:
        deadline = time.monotonic() + 60
        while sh(*ctr, "version", check=False).returncode != 0:
            assert time.monotonic() < deadline, (tmp_path / "containerd.log").read_text()
            time.sleep(0.5)
        sh(*ctr, "images", "import", archive)
        # The runc shim's options SystemdCgroup = true and BinaryName: the
        # shim then passes --systemd-cgroup on every call, delete included.
        run = [*ctr, "run", "--runtime", "io.containerd.runc.v2", "--runc-binary", RUNTIME,
               "--runc-systemd-cgroup"]
        out = sh(*run, "--rm", "--cgroup", "system.slice:ctr:one", "localhost/busybox:latest", "one",
                 "sh", "-c", "cat /proc/self/cgroup; echo done").stdout
        assert "done" in out
        assert unit_gone("ctr-one.scope")
        sh(*run, "-d", "--cgroup", "system.slice:ctr:two", "localhost/busybox:latest", "two", "sleep", "1000")
        assert show("ctr-two.scope", "ActiveState")["ActiveState"] == "active"
        sh(*ctr, "task", "kill", "-s", "KILL", "two")
        deadline = time.monotonic() + STOP_TIMEOUT
        while "STOPPED" not in sh(*ctr, "task", "ls", check=False).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        sh(*ctr, "task", "delete", "two")
        sh(*ctr, "container", "delete", "two")
        assert unit_gone("ctr-two.scope")
    finally:
        for cid in ("one", "two"):
            sh(*ctr, "task", "delete", "-f", cid, check=False)
            sh(*ctr, "container", "delete", cid, check=False)
        daemon.kill()
        daemon.wait(timeout=30)
        shutil.rmtree(short, ignore_errors=True)
