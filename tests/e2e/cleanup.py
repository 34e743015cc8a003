"""Removing the engines' directories, and nothing outside them."""

import os
import shutil
import subprocess

from tests.support.leaks import leaked_mounts


def remove_tree(path: str):
    """rm -rf `path`, first detaching every mount under it: a bind mount
    left there (a container's volume) must not lead rmtree into host files."""
    # leaked_mounts describes each as "mount MOUNTPOINT"
    mountpoints = [line.split(" ", 1)[1] for line in leaked_mounts([path])]
    for mountpoint in sorted(mountpoints, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], timeout=30, check=False)
    shutil.rmtree(path, ignore_errors=True)


def remove_empty_dirs(*paths):
    """rmdir those of `paths` (in this order) that are empty: whatever is
    left in one was reported as a leak, and stays as evidence."""
    for path in paths:
        try:
            os.rmdir(path)
        except OSError:
            pass


CGROUP_MOUNT = "/sys/fs/cgroup"


class CgroupParent:
    """A top-level cgroup that an engine creates for its containers and
    keeps (podman's libpod_parent, ctr's /NAMESPACE): removed after the
    tests wherever they made the engine create it."""

    def __init__(self, name: str):
        self.name = name
        self._existing = set(self._paths())

    def _paths(self) -> list:
        # cgroup v2: the mount is the hierarchy; v1: one per controller below
        # it (where cpu and cpuacct may be symlinks to cpu,cpuacct)
        hierarchies = [CGROUP_MOUNT] + [os.path.join(CGROUP_MOUNT, h) for h in os.listdir(CGROUP_MOUNT)]
        return [os.path.join(h, self.name) for h in hierarchies
                if not os.path.islink(h) and os.path.isdir(os.path.join(h, self.name))]

    def remove_new(self):
        """rmdir the new ones, children first; the kernel refuses to remove
        a cgroup that still has processes, so nothing running is touched."""
        for top in set(self._paths()) - self._existing:
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
