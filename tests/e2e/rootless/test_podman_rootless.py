"""Rootless podman, run by an unprivileged user, driving the runtime: inside
podman's user namespace the runtime sees euid 0 without being the host's
root, and keeps its state under the XDG_RUNTIME_DIR podman sets."""

import os
import shutil

from tests.e2e.images import IMAGE
from tests.e2e.rootless.conftest import runtime_root
from tests.support.runtime import wait_until

# PID 1 of the container: ends at once on SIGTERM (stop), says when it is up
TERM_EXITS = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"


def test_run_rm_echo(rootless_podman, no_leaks):
    # podman's default network for rootless containers is slirp4netns
    network = [] if shutil.which("slirp4netns") else ["--network", "none"]
    result = rootless_podman("run", "--rm", *network, IMAGE, "echo", "hi")
    assert result.stdout == "hi\n"


def test_run_detached_exec_stop_rm(rootless_podman, victim, no_leaks):
    name = "rootless-detached"
    rootless_podman("run", "-d", "--name", name, "--network", "none", IMAGE, "sh", "-c", TERM_EXITS)
    try:
        wait_until(lambda: "ready" in rootless_podman("logs", name).stdout, 30, f"{name} to be ready")
        # the runtime's state is the user's, under podman's XDG_RUNTIME_DIR
        assert os.listdir(runtime_root(victim, rootless_podman.runtime))
        result = rootless_podman("exec", name, "sh", "-c", "echo in-$(id -u)")
        assert result.stdout == "in-0\n"
        rootless_podman("stop", "--time", "10", name)
        assert rootless_podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        rootless_podman("rm", "--force", name)


def test_userns_keep_id(rootless_podman, victim, no_leaks):
    # keep-id: a user namespace of the container's own inside podman's,
    # mapping the user's own uid to itself; the runtime writes its maps
    result = rootless_podman("run", "--rm", "--network", "none", "--userns=keep-id", IMAGE,
                             "sh", "-c", "id -u; id -g")
    assert result.stdout.split() == [str(victim.uid), str(victim.gid)]

