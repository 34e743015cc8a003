"""create, for a container that joins a pod's sandbox.

The member's own gofer is forked here, as for any container: it opens the
member's rootfs and bind sources in the host's mount namespace. Everything
else happens inside the pod: this CLI connects to the sandbox's control
socket and hands it, as fds, the gofer's socket, the member's control
socket, the caller's stdio and --preserve-fds, the console socket and the
namespaces named by path (opened and type-checked here, where host paths
resolve). The pod's sandbox forks the member's sandbox, which enters those
namespaces, makes the new ones and forks the member's PID 1 (into the
pod's pid namespace, or one of its own); from then on the member's
processes speak the ordinary create protocol with this CLI over the same
connection (`create._await_ready`).
"""

import os

from .. import status as st
from ..errors import Failure, Unsupported, os_error_text
from ..linux import ns, unix
from . import load
from .launch import Launched, cgroup_layout, connect_console, fork_gofer, listen_control


def pod_sandbox(root, cid, sid):
    """The running sandbox container that `cid` joins."""
    if not sid:
        raise Failure(f'container "{cid}": io.kubernetes.cri.sandbox-id is missing for a "container"')
    try:
        pod = load(root, sid)
    except Failure:
        raise Failure(f'container "{cid}": its sandbox "{sid}" does not exist') from None
    from .pod import SANDBOX
    if pod.record.get("podRole") != SANDBOX:
        raise Failure(f'container "{cid}": "{sid}" was not created as a sandbox '
                      f'(io.kubernetes.cri.container-type: sandbox)')
    if pod.status == st.STOPPED:
        raise Failure(f'container "{cid}": its sandbox "{sid}" is stopped')
    return pod


def check_supported(spec):
    """What a member cannot have: its own user namespace (the pod's user
    namespace owns everything in the pod, and its id maps are the pod's)."""
    for entry in spec.linux.namespaces:
        if entry.type == "user" and not entry.path:
            raise Unsupported("a new user namespace for a container that joins a sandbox")


def _namespace_fds(spec):
    """[(type, fd)] of the namespaces given by path, type-checked here."""
    from sandbox.setup import open_namespace
    out = []
    try:
        for entry in spec.linux.namespaces:
            if not entry.path:
                continue
            try:
                fd = open_namespace(entry.type, entry.path)
            except OSError as e:
                raise Failure(f"linux.namespaces: {entry.type} namespace {entry.path}: "
                              f"{(e.strerror or str(e)).lower()}") from None
            out.append((entry.type, fd))
            try:
                actual = ns.nstype_of(fd)
            except OSError:
                raise Failure(f"linux.namespaces: {entry.path} is not a namespace") from None
            if actual != ns.TYPES[entry.type][0]:
                raise Failure(f"linux.namespaces: {entry.path} is not a {entry.type} namespace")
    except BaseException:
        for _, fd in out:
            os.close(fd)
        raise
    return out


def launch(spec, sf, bundle, console_socket, preserve_fds, no_pivot):
    """Start the member's gofer and ask the pod's sandbox for the rest."""
    pod = pod_sandbox(sf.root, sf.cid, sf.sid)
    launched = Launched()
    sandbox_end, gofer_end = unix.pair()
    launched.commit, commit_end = unix.pair()
    control = console = None
    ns_fds = []
    try:
        control = listen_control(sf)
        console = connect_console(spec, console_socket)
        ns_fds = _namespace_fds(spec)
        launched.gofer_pid = fork_gofer(spec, bundle, sf, gofer_end, commit_end,
                                         [s for s in (sandbox_end, control, console, launched.commit) if s])
        try:
            conn = unix.connect(pod.sandbox["controlSocket"], 10)
        except OSError as e:
            raise Failure(f'sandbox "{sf.sid}" does not answer: {os_error_text(e)}') from None
        launched.sync = conn
        unix.pass_credentials(conn)
        fds = [sandbox_end.fileno(), control.fileno(), 0, 1, 2]
        fds += [console.fileno()] if console is not None else []
        fds += list(range(3, 3 + preserve_fds)) + [fd for _, fd in ns_fds]
        unix.send(conn, {"op": "member", "cid": sf.cid, "spec": spec.raw, "bundle": bundle,
                         "noPivot": no_pivot, "preserveFds": preserve_fds, "console": console is not None,
                         "namespaces": [kind for kind, _ in ns_fds], "cgroupLayout": cgroup_layout(),
                         "oomScoreAdj": _own_oom_score_adj()}, fds)
    finally:
        for sock in (sandbox_end, gofer_end, commit_end, control, console):
            if sock is not None:
                sock.close()
        for _, fd in ns_fds:
            os.close(fd)
    return launched


def _own_oom_score_adj():
    """What the member's process gets when its spec sets no oomScoreAdj:
    runtime-spec "If oomScoreAdj is not set, the runtime MUST NOT change
    oom_score_adj", i.e. the value the caller gave us, not the pod's."""
    from .pod import read_oom_score_adj
    return read_oom_score_adj()
