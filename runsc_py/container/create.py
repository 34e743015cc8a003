"""create: build a container whose process waits for `start`.

Steps, each undone if a later one fails ("as if the operation were never
attempted", runtime-spec runtime.md "create"):
validate the whole bundle -> lock the new id -> spec snapshot -> fork the
gofer -> fork the sandbox (namespaces; outside the container's pid
namespace) -> its child, the container's PID 1, builds the root -> the
sandbox reports ready -> record `created` -> pid file -> commit.

Until the commit, gofer and sandbox die with the CLI (they hold the other
end of a socket to it and exit on EOF), so a create killed at any point
leaves no process behind; `delete --force` removes whatever files remain.
"""

import os
import time

from .. import jsonio
from .. import status as st
from ..errors import Failure, os_error_text
from ..linux import proc, unix
from ..state_file import StateFile, atomic_write, validate_id
from . import faults
from .launch import Launched, cgroup_layout, connect_console, fork_gofer, listen_control

SETUP_TIMEOUT = 60.0


def load_spec(bundle):
    from specs.config import ConfigError, load_bundle
    try:
        return load_bundle(bundle)
    except ConfigError as e:
        raise Failure(str(e)) from None


def check_supported(spec):
    """Refuse, before anything exists, what this runtime cannot apply: a
    security field silently ignored is worse than a refusal."""
    from ..errors import Unsupported
    if spec.process is None:
        raise Failure("config.json: process: is required to create a container")
    linux = spec.linux
    new = {n.type for n in linux.namespaces if not n.path}
    if spec.hostname is not None and "uts" not in new and spec.hostname != "":
        raise Failure("config.json: hostname: setting a hostname requires a new uts namespace")
    if "user" in new and "mount" not in new:
        # The root is built in a mount namespace the runtime's user
        # namespace owns: a new user namespace has no right to mount there.
        raise Unsupported("linux.namespaces: a new user namespace without a new mount namespace "
                          "(the root would be built in a mount namespace it does not own)")
    from sandbox.confine import check
    check(spec.process, linux)


def _enter_cgroup(launched, cgroup):
    """The gofer and the sandbox join the container's cgroup, then the
    sandbox may go on: the cgroup namespace it makes has the cgroup of its
    maker as root, so the container sees its own cgroup as "/". A pod
    member's sandbox is forked inside the pod's sandbox: it joins when it
    reports itself (`_await_ready`), before it forks its PID 1."""
    launched.cgroup = cgroup
    if cgroup is not None:
        cgroup.enter([pid for pid in (launched.gofer_pid, launched.setup_pid) if pid])
        launched.join_on_start = launched.setup_pid is None
    if launched.setup_pid:
        unix.send(launched.sync, {"go": True})


def _creation_hooks(spec, cid, bundle, launched):
    """prestart (deprecated, still run) then createRuntime, in the runtime
    namespace, with the state of a container that is being created."""
    from ..hooks import run_hooks
    from specs.state import oci_state
    state = oci_state(cid, st.CREATED, launched.sandbox_pid, bundle, spec.annotations)  # as crun gives
    run_hooks("prestart", spec.hooks.prestart, state)
    run_hooks("createRuntime", spec.hooks.create_runtime, state)
    return state


def _await_ready(launched, spec, cid, bundle):
    """Serve the set-up child and the sandbox until the sandbox is ready."""
    linux = spec.linux
    sync = launched.sync
    sync.settimeout(SETUP_TIMEOUT)
    while True:
        try:
            msg, _, sender = unix.recv_with_pid(sync)
        except TimeoutError:
            raise Failure(f"sandbox set-up did not finish within {SETUP_TIMEOUT:g}s") from None
        if msg is None:
            raise Failure("sandbox exited during set-up")
        if "error" in msg:
            raise Failure(msg["error"])
        if msg.get("op") == "idmap":
            try:
                from ..idmap import write_id_maps
                write_id_maps(msg["pid"], linux)
                unix.send(sync, {"ok": True})
            except OSError as e:
                unix.send(sync, {"error": f"writing id maps: {os_error_text(e)}"})
        elif msg.get("op") == "hooks":
            from ..hooks import HookFailure
            launched.hooks_began = True
            try:
                unix.send(sync, {"ok": True, "state": _creation_hooks(spec, cid, bundle, launched)})
            except (HookFailure, OSError) as e:
                unix.send(sync, {"error": "hook failed"})
                raise Failure(str(e) if isinstance(e, HookFailure) else os_error_text(e)) from None
        elif msg.get("started"):
            # The sandbox's first message; the kernel names its sender in
            # our pid namespace (SO_PASSCRED).
            launched.sandbox_pid = sender
            if launched.join_on_start:
                launched.cgroup.enter([sender])
            if launched.setup_pid is None:  # a member's sandbox waits for its cgroup
                unix.send(sync, {"go": True})
        elif msg.get("ready"):
            return


def launch(spec, sf, bundle, console_socket, preserve_fds, no_pivot):
    from sandbox import setup

    launched = Launched()
    sandbox_end, gofer_end = unix.pair()
    launched.commit, commit_end = unix.pair()
    launched.sync, sync_end = unix.pair()
    unix.pass_credentials(launched.sync)
    control = None
    console = None
    try:
        control = listen_control(sf)
        console = connect_console(spec, console_socket)
        confinement = _prepare_confinement(spec)
        child_ends = [s for s in (sandbox_end, sync_end, control, console) if s is not None]
        launched.gofer_pid = fork_gofer(spec, bundle, sf, gofer_end, commit_end,
                                         child_ends + [launched.commit, launched.sync])
        faults.point("create:after-gofer-fork")
        launch_args = setup.Launch(spec=spec, cid=sf.cid, sync=sync_end, gofer=sandbox_end, control=control,
                                   console=console, preserve_fds=preserve_fds, no_pivot=no_pivot,
                                   cgroup_layout=cgroup_layout(), confinement=confinement,
                                   oom_score_adj=_sandbox_oom_score_adj(spec),
                                   pod_sandbox=_is_pod_sandbox(spec), owner_uid=os.geteuid())
        pid = os.fork()
        if pid == 0:
            for sock in (gofer_end, commit_end, launched.commit, launched.sync):
                sock.close()
            setup.run(launch_args)
        launched.setup_pid = pid
        faults.point("create:after-sandbox-fork")
    finally:
        for sock in (sandbox_end, gofer_end, commit_end, sync_end, control, console):
            if sock is not None:
                sock.close()
    return launched


def _is_pod_sandbox(spec):
    from .pod import SANDBOX, role_of
    return role_of(spec.annotations)[0] == SANDBOX


def _sandbox_oom_score_adj(spec):
    """The sandbox gets the lowest oomScoreAdj of the containers it holds,
    the pod's pause container excepted (runsc's rule): a container of its
    own gives it its value at once; a pod's members adjust it later."""
    if _is_pod_sandbox(spec):
        return None
    return spec.process.oom_score_adj


def _prepare_confinement(spec):
    from sandbox.confine import prepare
    return prepare(spec.process, spec.linux)


def new_record(sf, spec, bundle, launched, console_socket, role, original_oom):
    from ..hooks import kinds_present
    now = time.time()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
    return {
        "id": sf.cid, "sandboxId": sf.sid, "bundle": bundle, "rootfs": spec.root.path,
        "ociVersion": spec.oci_version, "createdAt": created, "owner": str(os.geteuid()),
        "status": st.CREATED, "annotations": dict(spec.annotations),
        "sandbox": {"pid": launched.sandbox_pid, "startTime": proc.start_time(launched.sandbox_pid),
                    "controlSocket": sf.path("sock"), "originalOomScoreAdj": original_oom},
        "gofer": {"pid": launched.gofer_pid, "startTime": proc.start_time(launched.gofer_pid)},
        "consoleSocket": console_socket, "exitStatus": None,
        "cgroup": launched.cgroup.record() if launched.cgroup is not None else None,
        "podRole": role, "oomScoreAdj": spec.process.oom_score_adj,
        "hookKinds": kinds_present(spec.hooks),
    }


def check_preserved_fds(count):
    """--preserve-fds N passes the caller's fds 3..3+N-1: each must be open,
    or one of the runtime's own fds (a lock, a socket) would be numbered
    into that range and handed to the container."""
    if count < 0:
        raise Failure(f"--preserve-fds {count}: must not be negative")
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise Failure(f"--preserve-fds {count}: fd {fd} is not open") from None


def write_pid_file(path, pid):
    try:
        atomic_write(os.path.abspath(path), f"{pid}".encode(), mode=0o644)
    except OSError as e:
        raise Failure(f"--pid-file: {os_error_text(e)}") from None


def create(root, cid, bundle, pid_file=None, console_socket=None, preserve_fds=0, no_pivot=False,
           console_proxy=None):
    """Create container `cid` from `bundle`; returns the sandbox pid.

    `console_proxy`: a ConsoleProxy to receive the terminal when the process
    wants one and no --console-socket was given (`run` in a terminal)."""
    from . import member, pod
    from .pod import read_oom_score_adj
    check_preserved_fds(preserve_fds)  # before the runtime opens an fd that could take their place
    bundle = os.path.abspath(bundle or ".")
    validate_id(cid)  # before any path is built
    spec = load_spec(bundle)
    check_supported(spec)
    role, sid = pod.role_of(spec.annotations)
    if role == pod.CONTAINER:
        member.check_supported(spec)
        member.pod_sandbox(root, cid, sid)
    from .. import cgroups
    cgroup_plan = cgroups.plan(spec, cid)  # resources checked against this host before anything exists
    _refuse_taken_id(root, cid)
    sf = StateFile(root, cid, sid)
    if spec.process.terminal and not console_socket and console_proxy is not None:
        console_socket = console_proxy.path
    start_with = member.launch if role == pod.CONTAINER else launch
    if role == pod.SANDBOX:
        _preload_for_members()
    sf.lock_for_new()
    launched = cgroup = None
    try:
        sf.save_spec_locked(jsonio.dumps(spec.raw).encode())
        cgroup = cgroup_plan.create(sf.path("cgroup"))
        faults.point("create:after-cgroup")
        launched = start_with(spec, sf, bundle, console_socket, preserve_fds, no_pivot)
        _enter_cgroup(launched, cgroup)
        _await_ready(launched, spec, cid, bundle)
        record = new_record(sf, spec, bundle, launched, console_socket, role, read_oom_score_adj())
        faults.point("create:before-save")
        sf.save_locked(record)
        faults.point("create:after-save")
        if pid_file:
            write_pid_file(pid_file, launched.sandbox_pid)
        launched.commit_all()
    except BaseException:
        if launched is not None:
            launched.kill()
        if cgroup is not None:
            cgroup.remove()  # its processes are gone: the cgroups this create made go too
        sf.destroy()
        if launched is not None and launched.hooks_began:
            _poststop_after_failure(spec, cid, bundle)
        raise
    finally:
        sf.unlock()
    if role == pod.CONTAINER:
        pod.adjust_sandbox_oom(root, sid)
    return launched.sandbox_pid


def _poststop_after_failure(spec, cid, bundle):
    """runtime.md: "If any prestart hook fails, the runtime MUST generate an
    error, stop the container, and continue the lifecycle at step 12" (the
    same for createRuntime and createContainer), and step 13 runs the
    poststop hooks: once the creation hooks have run, a failed create runs
    them, as a delete would (failures there are warnings)."""
    if not spec.hooks.poststop:
        return
    from ..errors import log
    from ..hooks import run_hooks_warning
    from specs.state import oci_state
    run_hooks_warning("poststop", spec.hooks.poststop, oci_state(cid, st.STOPPED, 0, bundle, spec.annotations), log)


def _refuse_taken_id(root, cid):
    from ..errors import AlreadyExists
    if StateFile.id_taken(root, cid):
        raise AlreadyExists(cid)


def _preload_for_members():
    """A pod's sandbox builds its members' confinement after pivot_root,
    where nothing can be imported: load what that needs now."""
    from sandbox import seccomp
    seccomp.preload()
