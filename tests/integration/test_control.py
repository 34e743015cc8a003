"""The control socket does not trust its peers: only root and the
runtime's owner can reach it whatever the umask, the sandbox checks the
peer's uid, and a request that is not valid gets an error reply and
changes nothing — the container keeps running."""

import json
import os
import socket

import pytest

NOBODY = 65534
SO_SNDBUFFORCE = 32


def control_path(env, cid):
    return env.rt.state(cid) and _record(env, cid)["sandbox"]["controlSocket"]


def _record(env, cid):
    for name in os.listdir(env.root):
        if name.startswith(f"{cid}_sandbox:") and name.endswith(".state"):
            with open(os.path.join(env.root, name)) as f:
                return json.load(f)
    raise AssertionError(f"no record of {cid}")


def as_uid(uid, path, payload):
    """In a child with `uid`: connect to `path` (through an fd of its
    directory, so that the test's own 0700 directories above do not decide
    it) and send `payload`; returns what it saw: "refused: <errno name>"
    or the reply's text."""
    import errno
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            target = f"/proc/self/fd/{directory}/{os.path.basename(path)}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.settimeout(10)
            try:
                sock.connect(target)
                sock.send(payload)
                text = sock.recv(1 << 16).decode(errors="replace")
            except OSError as e:
                text = f"refused: {errno.errorcode.get(e.errno, e.errno)}"
            os.write(w, text.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(directory)
    with os.fdopen(r, "rb") as f:
        seen = f.read().decode()
    os.waitpid(pid, 0)
    return seen


def send_as_root(path, payload):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(10)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
        sock.connect(path)
        sock.send(payload)
        return sock.recv(1 << 16).decode(errors="replace")


def running(env, cid):
    state = env.rt.state(cid)
    return state["status"] == "running" and os.path.exists(f"/proc/{state['pid']}")


@pytest.fixture
def container(env):
    cid = env.cid()
    env.rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid, preexec_fn=lambda: os.umask(0))
    yield cid
    env.rt("delete", "--force", cid)


def test_socket_made_under_umask_000_refuses_other_uids(env, container):
    path = control_path(env, container)
    assert os.stat(path).st_mode & 0o077 == 0
    assert as_uid(NOBODY, path, b'{"op":"start"}') == "refused: EACCES"
    # With the file mode out of the way, the sandbox's own check refuses it.
    os.chmod(path, 0o777)
    reply = as_uid(NOBODY, path, b'{"op":"start"}')
    assert f"uid {NOBODY} may not control this container" in reply
    assert env.rt.status(container) == "created"
    env.rt("start", container)
    assert running(env, container)


@pytest.mark.parametrize("payload", [b"[]", b'{"op":"signal","signal":null}', b'{"op":"signal","signal":true}',
                                     b'{"op":"signal","signal":99}', b'{"op":"start","state":[]}',
                                     b'{"op":"member"}', b'{"op":7}', b"\xff" * (1 << 20),
                                     b"[" * 100000, b'{"op":"nope"}', b'{"op":"namespaces"}',
                                     b'{"op":"namespaces","names":"pid"}',
                                     b'{"op":"namespaces","names":["pid","../../etc/passwd"]}',
                                     b'{"op":"namespaces","names":[7]}'])
def test_bad_requests_get_an_error_and_change_nothing(env, container, payload):
    env.rt("start", container)
    path = control_path(env, container)
    try:
        reply = json.loads(send_as_root(path, payload))
        assert "error" in reply and "ok" not in reply, reply
    except OSError as e:  # a datagram too large for the kernel never reached the sandbox
        assert len(payload) >= 1 << 20, e
    assert running(env, container)
    env.rt("kill", container, "KILL")  # and it still obeys


def test_member_request_refused_by_a_container_that_is_not_a_pod(env, container):
    path = control_path(env, container)
    request = {"op": "member", "cid": "x", "bundle": "/", "spec": {}, "noPivot": False, "console": False,
               "preserveFds": 0, "namespaces": [], "cgroupLayout": []}
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with sock:
            sock.settimeout(10)
            sock.connect(path)
            socket.send_fds(sock, [json.dumps(request).encode()], fds)
            reply = json.loads(sock.recv(1 << 16))
    finally:
        for fd in fds:
            os.close(fd)
    assert "not a pod's sandbox" in reply["error"]
    assert env.rt.status(container) == "created"


def test_namespaces_request_served_by_the_confined_sandbox(env, container):
    """What exec and ps ask for when they may not open the sandbox's
    /proc/PID/ns (rootless): the sandbox, already under its seccomp
    filter, sends its own namespaces and its children's pid namespace,
    which is the container's PID 1's."""
    env.rt("start", container)
    sandbox = _record(env, container)["sandbox"]["pid"]
    with open(f"/proc/{sandbox}/task/{sandbox}/children") as f:
        init = int(f.read().split()[0])  # the container's PID 1
    names = ["mnt", "pid_for_children", "net"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with sock:
        sock.settimeout(10)
        sock.connect(control_path(env, container))
        sock.send(json.dumps({"op": "namespaces", "names": names}).encode())
        data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 16)
    try:
        reply = json.loads(data)
        assert reply == {"ok": True, "names": names}
        assert len(fds) == len(names)
        inodes = [os.fstat(fd).st_ino for fd in fds]
    finally:
        for fd in fds:
            os.close(fd)
    assert inodes[0] == os.stat(f"/proc/{init}/ns/mnt").st_ino
    assert inodes[1] == os.stat(f"/proc/{init}/ns/pid").st_ino == os.stat(f"/proc/{sandbox}/ns/pid_for_children").st_ino
    assert inodes[1] != os.stat(f"/proc/{sandbox}/ns/pid").st_ino  # the sandbox is outside it
    assert inodes[2] == os.stat(f"/proc/{init}/ns/net").st_ino
    assert running(env, container)
