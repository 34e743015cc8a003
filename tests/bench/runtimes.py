"""The runtimes under test, driven through their CLIs the way an engine
drives them: one temp dir each (state root, rootfs, bundles, pid files)."""

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from specs.default import default_spec
from tests.support.busybox import make_rootfs

from .procs import CommandError, ExitWatch, descendants, processes, timed_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNSC_PY = os.path.join(REPO, ".venv", "bin", "runsc-py")

# Global flags besides --root; runsc works here only with these.
COMMANDS = {
    "runsc-py": [RUNSC_PY],
    "runc": ["runc"],
    "crun": ["crun"],
    "runsc": ["runsc", "--platform=ptrace", "--network=none"],
}
# crun 1.8 refuses an ociVersion of 1.2 ("unknown version specified"); the
# field changes nothing else, so crun gets the newest version it knows.
CONFIG_CHANGES = {"crun": {"ociVersion": "1.1.0"}}

COMMAND_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0
TRUE = ["/bin/true"]
SLEEP = ["sleep", "1000"]


def installed(name):
    return shutil.which(COMMANDS[name][0]) is not None


class Container:
    def __init__(self, cid, pid):
        self.cid = cid
        self.exit = ExitWatch(pid)


class Runtime:
    def __init__(self, name, workdir, token):
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.root = os.path.join(self.dir, "root")
        self.rootfs = os.path.join(self.dir, "rootfs")
        self.token = token
        self.live = set()   # ids that may exist: what cleanup deletes
        os.makedirs(os.path.join(self.dir, "pids"))
        make_rootfs(self.rootfs)

    def argv(self, *args):
        return COMMANDS[self.name] + ["--root", self.root] + list(args)

    def call(self, *args, timeout=COMMAND_TIMEOUT):
        try:
            return timed_run(self.argv(*args), timeout)
        except CommandError as e:
            raise CommandError(f"{args[0]} {e}") from None

    def cid(self, phase, n):
        """Fixed width, as runsc takes a prefix of an id for the id ("-1"
        would be ambiguous next to "-10"); short, as runsc-py fails to
        create a container whose id is longer than about 37 characters
        (its socket <id>_sandbox:<id>.sock does not fit sun_path)."""
        return f"{self.token}-{self.name}-{phase}-{n:05d}"

    def bundle(self, cid, args):
        """A bundle per container (config.json only; the rootfs is shared), so
        each gets its own cgroupsPath and its processes name it."""
        path = os.path.join(self.dir, "bundles", cid)
        os.makedirs(path, exist_ok=True)
        config = default_spec()
        config["process"]["terminal"] = False
        config["process"]["args"] = list(args)
        config["root"]["path"] = self.rootfs
        config["linux"]["cgroupsPath"] = f"/{self.token}/{cid}"
        config.update(CONFIG_CHANGES.get(self.name, {}))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        return path

    def create(self, cid, bundle):
        """(seconds, Container) of `create`; the pid is the one the runtime
        writes to --pid-file (runc/crun: the container's init; runsc and
        runsc-py: the sandbox)."""
        pid_file = os.path.join(self.dir, "pids", cid)
        self.live.add(cid)
        seconds = self.call("create", "--bundle", bundle, "--pid-file", pid_file, cid)
        try:
            with open(pid_file) as f:
                return seconds, Container(cid, int(f.read()))
        except (OSError, ValueError) as e:
            raise CommandError(f"create wrote no pid to --pid-file: {e}") from None

    def delete(self, cid, *flags):
        seconds = self.call("delete", *flags, cid)
        self.live.discard(cid)
        return seconds

    def run(self, cid, bundle):
        self.live.add(cid)
        seconds = self.call("run", "--bundle", bundle, cid)
        self.live.discard(cid)  # `run` deletes the container it ran
        return seconds

    def stop(self, container):
        """kill KILL, wait for the exit, delete: faster than `delete --force`
        (runc's polls every 100 ms); --force only when that fails."""
        try:
            self.call("kill", container.cid, "KILL")
            container.exit.wait(EXIT_TIMEOUT)
            self.delete(container.cid)
        except CommandError:
            self.delete(container.cid, "--force")
        finally:
            container.exit.close()

    def stop_all(self, containers, workers):
        _in_parallel(self.stop, containers, workers)

    def delete_leftovers(self, workers):
        """delete --force whatever may still exist (bounded per call)."""
        _in_parallel(lambda cid: self.delete(cid, "--force"), sorted(self.live), workers)

    @property
    def has_helpers(self):
        return self.name in HELPERS

    def helpers(self, cid):
        """The host processes kept alive for a running container besides its
        workload (only for runtimes that have such helpers)."""
        return HELPERS[self.name](cid, os.path.join(self.dir, "bundles", cid))


def _in_parallel(fn, items, workers):
    """fn(item) for every item, ignoring the failures (cleaning up)."""
    def quietly(item):
        try:
            fn(item)
        except CommandError:
            pass
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(quietly, items))


def _carries(argv, *names):
    """Whether one of `names` is a word of the cmdline (or a --flag=value's
    value). Words, not argv elements: a retitled process (prctl
    set_proctitle) has its whole title in one element."""
    words = " ".join(argv).split()
    return any(word == n or word.endswith("=" + n) for word in words for n in names)


def _runsc_py_helpers(cid, bundle):
    # The sandbox and gofer name themselves (the kernel keeps 15 characters
    # of a name) and carry the id in their title; the workload is a child
    # of the sandbox with its own name.
    names = ("runsc-py-sandbox"[:15], "runsc-py-gofer")
    return [pid for pid, comm, argv in processes() if comm in names and _carries(argv, cid)]


def _runsc_helpers(cid, bundle):
    # The sandbox names the id, the gofer only the bundle; the ptrace stubs
    # below the sandbox (where the workload runs) have no argv of their own.
    found = set()
    for pid, _comm, argv in processes():
        if _carries(argv, cid, bundle):
            found.update(descendants(pid))
    return sorted(found)


HELPERS = {"runsc-py": _runsc_py_helpers, "runsc": _runsc_helpers}
