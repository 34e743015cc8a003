"""Namespaces joined by path and namespaces left out (runtime-spec
config-linux.md "Namespaces": a `path` "MUST" be joined; a type left out
means the container shares the runtime's namespace of that type).

A container without a mount namespace of its own builds its root on a
detached tree (sandbox.rootfs.hold_root): these tests check that it runs
in the namespace it was given, sees its rootfs and its mounts, and that
the namespace's other users see no mount of it, neither while it exists
nor after."""

import os
import subprocess

import pytest

from tests.support.confined import assert_refused, config, output
from tests.support.runtime import wait_until

PROBE = "readlink /proc/self/ns/mnt; cat /marker; test -c /dev/null && echo dev; test -d /proc/1 && echo proc"


def without(cfg, kind):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    return cfg


def mounts_of(env, pid="self"):
    """The mounts a process sees at "/" and under the test's directory
    (bundles, rootfs, volumes), without their ids: compared across calls.
    (Not the whole table: other tests on the host mount and unmount.)"""
    top = env.tmp.rstrip("/") + "/"
    with open(f"/proc/{pid}/mountinfo") as f:
        fields = [line.split() for line in f]
    return sorted(" ".join(f[3:]) for f in fields if f[4] == "/" or f[4].startswith(top))


def bundle_with_marker(env, cfg, text):
    path = env.bundle(config=cfg)
    with open(os.path.join(path, "rootfs", "marker"), "w") as f:
        f.write(text + "\n")
    return path


class Holder:
    """A process that holds new namespaces (`unshare FLAGS sleep`)."""

    def __init__(self, *flags):
        self.proc = subprocess.Popen(["unshare", *flags, "sleep", "1000"])
        wait_until(lambda: self._ready(flags), 10, "the namespace holder")

    def _ready(self, flags):
        names = [{"--mount": "mnt", "--uts": "uts", "--ipc": "ipc", "--net": "net"}[f] for f in flags]
        try:
            return all(self.ns(n) != os.readlink(f"/proc/self/ns/{n}") for n in names)
        except FileNotFoundError:
            return False

    def path(self, name):
        return f"/proc/{self.proc.pid}/ns/{name}"

    def ns(self, name):
        return os.readlink(self.path(name))

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def holder(request):
    h = Holder(*request.param)
    yield h
    h.close()


@pytest.mark.parametrize("holder", [("--mount",)], indirect=True)
def test_a_mount_namespace_joined_by_path(env, holder):
    """The container is in the joined mount namespace and sees its rootfs
    and its mounts; the namespace's other process keeps its root and sees
    no new mount, while the container exists and after."""
    before = mounts_of(env, holder.proc.pid)
    cfg = without(config(["sh", "-c", PROBE]), "mount")
    cfg["linux"]["namespaces"].append({"type": "mount", "path": holder.path("mnt")})
    bundle = bundle_with_marker(env, cfg, "joined")
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.split()
    assert out == [holder.ns("mnt"), "joined", "dev", "proc"]
    assert mounts_of(env, holder.proc.pid) == before
    assert os.readlink(f"/proc/{holder.proc.pid}/root") == "/"


@pytest.mark.parametrize("how", ["left out", "runtime's by path"])
def test_a_container_sharing_the_runtime_mount_namespace(env, how):
    """No `mount` entry (or the runtime's own by path): the container is
    in the runtime's mount namespace, sees its rootfs, and the runtime's
    mount table is the same while it exists (created: its root is built)
    and after it is gone; its "/" keeps its propagation."""
    cfg = without(config(["sh", "-c", PROBE]), "mount")
    if how != "left out":
        cfg["linux"]["namespaces"].append({"type": "mount", "path": f"/proc/{os.getpid()}/ns/mnt"})
    bundle = bundle_with_marker(env, cfg, "shared")
    before = mounts_of(env)
    cid = env.cid()
    env.rt("create", "--bundle", bundle, cid)
    assert mounts_of(env) == before
    env.rt("delete", "--force", cid)
    out = env.rt("run", "--bundle", bundle, env.cid("run")).stdout.split()
    assert out == [os.readlink("/proc/self/ns/mnt"), "shared", "dev", "proc"]
    assert mounts_of(env) == before


@pytest.mark.parametrize("propagation", [None, "rprivate", "slave"])
def test_a_shared_mount_namespace_with_bind_mounts_and_a_readonly_root(env, tmp_path, propagation):
    """Bind mounts, masked paths, rootfsPropagation and a read-only root
    work on the detached root too."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "data").write_text("volume\n")
    cfg = without(config(["sh", "-c", "cat /vol/data; touch /x 2>/dev/null || echo ro; "
                          "cat /proc/timer_list 2>&1; echo end"]), "mount")
    cfg["mounts"].append({"destination": "/vol", "type": "bind", "source": str(volume),
                          "options": ["rbind", "ro"]})
    cfg["root"] = {"path": "rootfs", "readonly": True}
    cfg["linux"]["maskedPaths"] = ["/proc/timer_list"]
    if propagation:
        cfg["linux"]["rootfsPropagation"] = propagation
    before = mounts_of(env)
    path = env.bundle(config=cfg)
    out = env.rt("run", "--bundle", path, env.cid()).stdout.split()
    assert out == ["volume", "ro", "end"], out
    assert mounts_of(env) == before


@pytest.mark.parametrize("holder", [("--uts", "--ipc", "--net")], indirect=True)
def test_uts_ipc_and_network_namespaces_joined_by_path(env, holder):
    cfg = config(["sh", "-c", "for n in uts ipc net; do readlink /proc/self/ns/$n; done"])
    cfg.pop("hostname", None)  # a hostname needs a new uts namespace
    for kind, name in (("uts", "uts"), ("ipc", "ipc"), ("network", "net")):
        without(cfg, kind)["linux"]["namespaces"].append({"type": kind, "path": holder.path(name)})
    assert output(env, cfg).split() == [holder.ns("uts"), holder.ns("ipc"), holder.ns("net")]


def test_a_new_user_namespace_without_a_new_mount_namespace_is_refused(env):
    cfg = without(config(["true"]), "mount")
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert_refused(env, cfg, "a new user namespace without a new mount namespace", "is not supported",
                   command="create")


@pytest.mark.parametrize("how", ["left out", "joined"])
def test_exec_enters_the_root_of_a_container_without_its_own_mount_namespace(env, how):
    """exec's process is chrooted into the container's root, not left at
    its mount namespace's (the host's) root: created and started."""
    holder = Holder("--mount") if how == "joined" else None
    try:
        cfg = without(config(["sleep", "1000"]), "mount")
        if holder is not None:
            cfg["linux"]["namespaces"].append({"type": "mount", "path": holder.path("mnt")})
        bundle = bundle_with_marker(env, cfg, "exec")
        cid = env.cid()
        env.rt("create", "--bundle", bundle, cid)
        probe = ["sh", "-c", "cat /marker; cd /..; ls /marker"]
        assert env.rt("exec", cid, *probe).stdout.split() == ["exec", "/marker"]
        env.rt("start", cid)
        out = env.rt("exec", cid, "sh", "-c", "readlink /proc/self/ns/mnt; cat /marker").stdout.split()
        mnt = holder.ns("mnt") if holder is not None else os.readlink("/proc/self/ns/mnt")
        assert out == [mnt, "exec"]
        env.rt("delete", "--force", cid)
    finally:
        if holder is not None:
            holder.close()
