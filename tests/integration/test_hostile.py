"""Hostile bundles: an image's symlinks and `..` never lead a mount, a
device or a file outside the container; no runtime fd or host cwd reaches
the container. Safe by construction (openat2 RESOLVE_IN_ROOT, pivot_root
before /dev work, non-dumpable sandbox), checked here against real mounts."""

import os
import shutil

from tests.support.busybox import read_config, write_config


def add_mounts(bundle, mounts):
    config = read_config(bundle)
    config["mounts"].extend(mounts)
    write_config(bundle, config)


def test_symlinked_destinations_stay_inside(env):
    host = os.path.join(env.tmp, "host-target")
    os.makedirs(host)
    bundle = env.bundle(["sh", "-c", "ls /etc/x /var/y >/dev/null && echo ok"])
    rootfs = os.path.join(bundle, "rootfs")
    shutil.rmtree(os.path.join(rootfs, "etc"))
    os.symlink(host, os.path.join(rootfs, "etc"))                  # absolute: the host dir
    shutil.rmtree(os.path.join(rootfs, "var"))
    os.symlink("../../../../../../..", os.path.join(rootfs, "var"))  # climbs out
    source = os.path.join(env.tmp, "source")
    os.makedirs(source)
    add_mounts(bundle, [
        {"destination": "/etc/x", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/var/y", "type": "bind", "source": source, "options": ["rbind"]},
        {"destination": "../../escape", "type": "tmpfs", "source": "tmpfs"},
    ])
    result = env.rt("run", "--bundle", bundle, env.cid())
    assert result.stdout.strip() == "ok"
    assert os.listdir(host) == []                     # nothing made in the host dir
    assert not os.path.exists("/y") and not os.path.exists("/escape")
    assert not os.path.exists(os.path.join(env.tmp, "escape"))
    # the targets were made inside the rootfs, where the symlinks resolve in-root
    assert os.path.isdir(os.path.join(rootfs, "x")) or os.path.isdir(os.path.join(rootfs, host.lstrip("/"), "x"))


def test_dev_symlink_to_host_device_is_replaced(env):
    bundle = env.bundle(["sh", "-c", "ls -l /dev/null | cut -c1"])
    rootfs = os.path.join(bundle, "rootfs")
    config = read_config(bundle)
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    write_config(bundle, config)
    os.symlink("/dev/sda", os.path.join(rootfs, "dev", "null"))
    result = env.rt("run", "--bundle", bundle, env.cid())
    assert result.stdout.strip() == "c"  # a real device node, not the image's symlink


def test_proc_replaced_by_symlink(env):
    """CVE-2019-16884 class: the image's /proc is a symlink. proc is still
    mounted inside the root (where the link leads, in-root), showing the
    container's pid namespace; nothing is mounted on the host's /tmp."""
    bundle = env.bundle(["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'"])
    rootfs = os.path.join(bundle, "rootfs")
    os.rmdir(os.path.join(rootfs, "proc"))
    os.symlink("/tmp", os.path.join(rootfs, "proc"))
    before = open("/proc/self/mountinfo").read().count(" /tmp ")
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.splitlines()
    assert out[0].startswith("sh -c")  # the workload is PID 1
    assert int(out[1]) <= 3
    assert open("/proc/self/mountinfo").read().count(" /tmp ") == before


def test_no_runtime_fd_or_host_cwd_in_the_container(env):
    bundle = env.bundle(["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/cwd; "
                                     "ls -l /proc/self/fd/ | grep -c -- '->' "])
    result = env.rt("run", "--bundle", bundle, env.cid())
    fds_line, cwd = result.stdout.splitlines()[:2]
    fds = [int(f) for f in fds_line.split()]
    assert set(fds) <= {0, 1, 2, 3}  # stdio, plus the fd ls itself opened
    assert cwd == "/"


def test_no_runtime_process_is_reachable_through_proc(env):
    """CVE-2019-5736 class: the sandbox is outside the container's pid
    namespace. Even with CAP_SYS_PTRACE (no user namespace) the container
    finds only its own processes in /proc: PID 1 is its workload, whose exe
    is the image's shell, and no runtime process has an entry there."""
    script = ("tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe; "
              "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
    for caps in (None, "CAP_SYS_PTRACE"):
        bundle = env.bundle(["sh", "-c", script])
        if caps:
            config = read_config(bundle)
            for kind in ("bounding", "effective", "permitted"):
                config["process"]["capabilities"].setdefault(kind, []).append(caps)
            write_config(bundle, config)
        out = env.rt("run", "--bundle", bundle, env.cid(caps or "default")).stdout.splitlines()
        assert out[0].startswith("sh -c tr"), out
        assert not out[1].startswith(("/usr", "/root", "/work")) and "python" not in out[1], out
        cmdlines = [line for line in out[2:] if line.strip()]
        assert cmdlines and all(c.startswith(("sh -c", "tr")) for c in cmdlines), out
        assert not any("runsc-py" in line for line in out), out


def test_ids_with_path_elements_are_rejected(env):
    bundle = env.bundle(["true"])
    for bad in ("../../x", "a/b", "..", "x/../../y"):
        result = env.rt("create", "--bundle", bundle, bad, check=False)
        assert result.returncode == 1 and "invalid container id" in result.stderr
    assert not os.path.exists(env.root) or os.listdir(env.root) == []
