"""`runsc-py spec`: writes the default config.json (never over an existing
one), a rootless variant with the caller's id mappings, both valid, and of
the same shape as `runc spec`'s."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from specs.config import parse_config
from specs.default import default_spec

RUNTIME = [sys.executable, "-m", "runsc_py"]


def spec_command(bundle, *flags):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}
    return subprocess.run(RUNTIME + ["spec", "--bundle", str(bundle), *flags], capture_output=True, text=True,
                          timeout=30, env=env)


def written(bundle):
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def test_spec_writes_the_default_config(tmp_path):
    result = spec_command(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    doc = written(tmp_path)
    assert doc == default_spec()
    spec = parse_config(json.dumps(doc), str(tmp_path))
    assert spec.root.path == f"{tmp_path}/rootfs"
    assert spec.process.args == ("sh",)
    assert oct(os.stat(tmp_path / "config.json").st_mode & 0o777) == "0o644"


def test_spec_refuses_to_overwrite(tmp_path):
    (tmp_path / "config.json").write_text("mine")
    result = spec_command(tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"runsc-py: File {tmp_path}/config.json exists. Remove it first"]
    assert (tmp_path / "config.json").read_text() == "mine"


def test_spec_refuses_a_dangling_symlink(tmp_path):
    """O_EXCL: not even through a symlink pointing nowhere."""
    os.symlink(tmp_path / "elsewhere", tmp_path / "config.json")
    result = spec_command(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_spec_bundle_missing(tmp_path):
    result = spec_command(tmp_path / "nope")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"runsc-py: {tmp_path}/nope/config.json: no such file or directory"]


def test_rootless_spec_maps_the_caller(tmp_path):
    result = spec_command(tmp_path, "--rootless")
    assert result.returncode == 0, result.stderr
    doc = written(tmp_path)
    linux = doc["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert {"type": "network"} not in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    spec = parse_config(json.dumps(doc), str(tmp_path))
    assert spec.linux.uid_mappings[0].host_id == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_rootless_spec_maps_another_caller():
    """The mapping is the caller's ids, not root's: computed as uid/gid 4242."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(4343)
            os.setuid(4242)
            os.write(write, json.dumps(default_spec(rootless=True)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        doc = json.loads(f.read())
    os.waitpid(pid, 0)
    assert doc["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 4242, "size": 1}]
    assert doc["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 4343, "size": 1}]
    parse_config(json.dumps(doc), "/bundle")


def test_default_spec_copies_are_independent():
    one = default_spec()
    one["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    one["mounts"].clear()
    two = default_spec()
    assert "CAP_SYS_ADMIN" not in two["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" not in one["process"]["capabilities"]["effective"]
    assert len(two["mounts"]) == 7


# -- the same shape as runc's ---------------------------------------------------------------

def runc_spec(tmp_path, *flags):
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    bundle = tmp_path / ("runc" + "".join(flags))
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle), *flags], check=True, timeout=30,
                   capture_output=True)
    return written(bundle)


def shape(doc):
    return {
        "keys": sorted(doc),
        "process": sorted(doc["process"]),
        "destinations": [m["destination"] for m in doc["mounts"]],
        "mounts": {m["destination"]: (m["type"], m["source"]) for m in doc["mounts"]},
        "namespaces": [n["type"] for n in doc["linux"]["namespaces"]],
        "linux": sorted(doc["linux"]),
        "root": doc["root"],
    }


def test_default_spec_has_runc_shape(tmp_path):
    runc = shape(runc_spec(tmp_path))
    ours = shape(default_spec())
    assert ours["keys"] == runc["keys"]
    assert ours["process"] == runc["process"]
    assert ours["destinations"] == runc["destinations"]
    assert ours["mounts"] == runc["mounts"]
    assert ours["linux"] == runc["linux"]
    assert ours["root"] == runc["root"]
    # runc >= 1.2 adds a cgroup namespace too; this host's runc may predate it.
    assert [n for n in ours["namespaces"] if n != "cgroup"] == [n for n in runc["namespaces"] if n != "cgroup"]
    assert "cgroup" in ours["namespaces"]


def test_rootless_spec_has_runc_shape(tmp_path):
    runc = shape(runc_spec(tmp_path, "--rootless"))
    ours = shape(default_spec(rootless=True))
    assert ours["keys"] == runc["keys"]
    assert ours["process"] == runc["process"]
    assert ours["linux"] == runc["linux"]
    assert [n for n in ours["namespaces"] if n != "cgroup"] == runc["namespaces"]
    # Known difference: runsc-py's rootless spec has no /sys/fs/cgroup mount
    # (runc's keeps one); everything else is mounted alike.
    assert ours["destinations"] == [d for d in runc["destinations"] if d != "/sys/fs/cgroup"]
    assert ours["mounts"] == {d: m for d, m in runc["mounts"].items() if d != "/sys/fs/cgroup"}


def test_default_specs_mount_options_match_runc(tmp_path):
    for flags in ((), ("--rootless",)):
        runc = {m["destination"]: m.get("options") for m in runc_spec(tmp_path, *flags)["mounts"]}
        ours = {m["destination"]: m.get("options") for m in default_spec(rootless=bool(flags))["mounts"]}
        assert {d: o for d, o in ours.items()} == {d: o for d, o in runc.items() if d in ours}
