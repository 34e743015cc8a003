"""The leak checker finds each kind of leak and names it: a checker that
cannot fail would let every other test pass while leaking."""

import os
import subprocess

from tests.support import leaks
from tests.support.runtime import wait_until


def test_each_kind_of_leak_is_named(env):
    token = env.token
    root = env.root
    os.makedirs(root)
    open(os.path.join(root, f"{token}-x_sandbox:{token}-x.lock"), "w").close()
    by_name = subprocess.Popen([f"runsc-py-sandbox {token}-x", "1000"], executable="/bin/sleep")
    in_cgroup = subprocess.Popen(["sleep", "1000"])  # nothing of the token in its cmdline
    hierarchy = leaks.hierarchies()[-1]
    cgroup = os.path.join(hierarchy, f"{token}-probe")
    mountpoint = os.path.join(env.tmp, "mnt")
    os.makedirs(mountpoint)
    os.mkdir(cgroup)
    try:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(in_cgroup.pid))
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mountpoint], check=True)
        wait_until(lambda: len(leaks.leaked_processes(token)) == 2, 5, "both processes to be seen")
        found = leaks.check(token, [env.tmp], root)
        assert f"mount {mountpoint}" in found
        assert f"cgroup {cgroup}" in found
        assert f"file {root}/{token}-x_sandbox:{token}-x.lock" in found
        processes = [line for line in found if line.startswith("process ")]
        assert sorted(leaks.pids_of(processes)) == sorted([by_name.pid, in_cgroup.pid])
        assert any("(by cmdline)" in p and f"{token}-x" in p for p in processes)
        assert any("(by cgroup)" in p for p in processes)
    finally:
        leaks.release(token, [env.tmp])
        by_name.wait(timeout=10)
        in_cgroup.wait(timeout=10)
        os.unlink(os.path.join(root, f"{token}-x_sandbox:{token}-x.lock"))
    assert leaks.check(token, [env.tmp], root) == []
    assert not os.path.exists(cgroup)
