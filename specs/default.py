"""The default config.json that `runsc-py spec` writes.

It describes what `runc spec` describes (an interactive `sh` in a new set
of namespaces, with a small capability set, a read-only `rootfs` and the
usual /proc, /dev and /sys mounts), so a bundle made for one works with the
other. `--rootless` adds a user namespace mapping the caller's uid and gid
to root and drops what an unprivileged user cannot have (device rules, the
devpts gid, a new sysfs instance without a network namespace).
"""

import copy
import json
import os

from .state import OCI_VERSION

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
           "/proc/scsi"]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_SPEC = {
    "ociVersion": OCI_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        # Three lists, not one shared: deepcopy keeps sharing, and a caller
        # changing one set must not change the others.
        "capabilities": {"bounding": list(_CAPS), "effective": list(_CAPS), "permitted": list(_CAPS)},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runsc-py",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}, {"type": "cgroup"}],
        "maskedPaths": _MASKED,
        "readonlyPaths": _READONLY,
    },
}


def default_spec(rootless=False) -> dict:
    """A fresh copy of the default config (callers may change it)."""
    spec = copy.deepcopy(_SPEC)
    if rootless:
        _make_rootless(spec)
    return spec


def _make_rootless(spec):
    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    del linux["resources"]
    for mount in spec["mounts"]:
        if mount["destination"] == "/dev/pts":
            mount["options"] = [o for o in mount["options"] if o != "gid=5"]
        elif mount["destination"] == "/sys":
            # Without its own network namespace a container cannot mount sysfs.
            mount.update(type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"]


def write_default_spec(bundle: str, rootless=False):
    """Write config.json into `bundle`; never overwrite one (runc refuses too)."""
    from runsc_py.errors import Failure
    path = os.path.join(bundle or ".", "config.json")
    data = json.dumps(default_spec(rootless), indent="\t") + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise Failure(f"File {path} exists. Remove it first") from None
    except OSError as e:
        raise Failure(f"{path}: {(e.strerror or str(e)).lower()}") from None
    with os.fdopen(fd, "w") as f:
        f.write(data)
