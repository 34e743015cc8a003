"""`python -m runsc_py.demo`: run a real busybox container, start to finish.

The bundle is built on the spot: config.json from the runtime's own default
spec (what `runsc-py spec` writes, made non-interactive) and a rootfs from
Debian's busybox-static. It runs through the same CLI an engine would call,
with its own root directory, and removes everything afterwards.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

SCRIPT = ("echo 'Hello from a runsc-py container!'; echo; "
          "echo \"hostname: $(hostname)   pid: $$   uid: $(id -u)\"; "
          "echo 'processes it can see:'; ps -o pid,comm; echo 'mounts:'; "
          "cut -d' ' -f2,3 /proc/mounts | head -8")


def build_bundle(path):
    from specs.default import default_spec
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        sys.exit("runsc-py demo: /bin/busybox is missing (apt-get install busybox-static)")
    rootfs = os.path.join(path, "rootfs")
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", SCRIPT]
    config["hostname"] = "runsc-py-demo"
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    if os.geteuid() != 0:
        sys.exit("runsc-py demo: run as root (containers need namespaces and mounts)")
    work = tempfile.mkdtemp(prefix="runsc-py-demo-")
    try:
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        build_bundle(bundle)
        cli = [sys.executable, "-m", "runsc_py", "--root", os.path.join(work, "root")]
        print(f"$ runsc-py run --bundle {bundle} demo", flush=True)
        code = subprocess.run(cli + ["run", "--bundle", bundle, "demo"]).returncode
        print(f"\ncontainer exited with status {code}")
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
