"""A busybox root filesystem and OCI bundles for tests and the benchmark.

The rootfs is built from Debian's `busybox-static` (one static binary plus a
link per applet), so it needs no registry and no image tooling.
"""

import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"


def make_rootfs(path: str) -> str:
    """Create a busybox rootfs at `path` (a directory that may not exist yet)."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root", "var", "run"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(path, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return path


def default_config(args=("sh",), terminal=False) -> dict:
    """The runtime spec's default-like config (what `runc spec` writes), with `args`."""
    from specs.default import default_spec
    config = default_spec()
    config["process"]["args"] = list(args)
    config["process"]["terminal"] = terminal
    config["root"]["readonly"] = False  # tests' workloads write marker files into their rootfs
    return config


def make_bundle(path: str, args=("sh",), rootfs: str | None = None, config: dict | None = None,
                **process) -> str:
    """Create a bundle at `path`: `rootfs/` (built, or a symlink-free copy
    shared via `rootfs`) and `config.json`. Keyword arguments override
    `process` fields."""
    os.makedirs(path, exist_ok=True)
    if rootfs is None:
        make_rootfs(os.path.join(path, "rootfs"))
        root_path = "rootfs"
    else:
        root_path = os.path.abspath(rootfs)
    if config is None:
        config = default_config(args)
    config["root"] = {"path": root_path, "readonly": config.get("root", {}).get("readonly", False)}
    config["process"].update(process)
    write_config(path, config)
    return path


def write_config(bundle: str, config: dict):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def read_config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)
