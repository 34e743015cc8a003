"""Every message between the CLI, the sandbox, its PID 1 and the gofer.

All messages are JSON objects, one per SEQPACKET datagram (unix.send /
unix.recv), fds as SCM_RIGHTS. Four channels:

  sync     CLI <-> sandbox (and its PID 1) during create; a pod member's
           create speaks it over its connection to the pod's sandbox
  gofer    sandbox <-> gofer, for the container's life
  init     sandbox <-> PID 1, from create until PID 1's execve
  control  any CLI call -> sandbox, one request and one reply per
           connection, on the control socket (validated here: its peers
           are not trusted)

create (non-member):

  CLI                  gofer               sandbox                  PID 1
   |--fork------------->|                     |                        |
   |--fork------------------------------------>|                       |
   |  (moves gofer and sandbox into the cgroup)|                       |
   |--SYNC_GO--------------------------------->|                       |
   |                    |--TREES (+fds)------->|                       |
   |<--IDMAP {pid}----------------------------| (new user ns only)     |
   |--OK / ERROR------------------------------>|                       |
   |                    |     unshare(all but pid); unshare(NEWPID)    |
   |<--STARTED (SO_PASSCRED: its pid)---------|                        |
   |                    |                     |--fork----------------->|
   |                    |                     |        build the root  |
   |<--HOOKS------------------------------------------------------------| (any create hook)
   |  prestart, createRuntime                 |                        |
   |--OK {state} / ERROR----------------------------------------------->|
   |                    |                     |  createContainer hooks |
   |                    |                     |<--BUILT----------------|
   |<--READY----------------------------------|                        |
   |  state file "created", pid file          |                        |
   |--COMMIT---------->|                      |                        |
   |--COMMIT---------------------------------->|                       |
  exits                 |                     |                        |

Any ERROR {error} ends the create; until COMMIT, gofer and sandbox exit when
the CLI's end closes. A pod member's create sends MEMBER (+fds) on a
control connection instead of forking the sandbox; the pod's sandbox forks
the member's, which answers SYNC_GO's place (it waits for it after STARTED)
and then speaks sync as above on that connection.

start, kill, exec, ps of a running container:

  CLI                        sandbox                       PID 1
   |--control START {state}---->|--INIT_START {state}-------->|
   |                            |<--SECCOMP_LISTENER (+fd) / ERROR / EOF = exec'd
   |<--OK {pid} (+fd) / ERROR---|                             |
   |--control SIGNAL {signal}-->|--kill(2)------------------->|
   |<--OK / ERROR---------------|                             |
   |--control NAMESPACES {names}| (exec and ps, rootless)     |
   |<--OK {names} (+fds)/ERROR--|                             |
   |                            |   PID 1 exits: waitpid      |
   |                            |--EXIT_STATUS {code}--> gofer: writes .exit
   |                            |<--OK-- gofer                |

The reply to every control request has "ok" or "error"; a request that is
not valid here gets an error reply and changes nothing.
"""

# sync and init: fields are read where they are made, by the two ends.
SYNC_GO = {"go": True}
STARTED = {"started": True}
READY = {"ready": True}
COMMIT = {"commit": True}
BUILT = {"built": True}
OK = {"ok": True}

# control requests
START, SIGNAL, PING, MEMBER, NAMESPACES = "start", "signal", "ping", "member", "namespaces"
# what a NAMESPACES request may name: entries of the sandbox's /proc/self/ns
# (the container's pid and time namespaces are those of its children)
NAMESPACE_NAMES = ("user", "mnt", "ipc", "uts", "net", "cgroup", "time", "time_for_children", "pid",
                   "pid_for_children")

MAX_REQUEST = 1 << 20  # bytes: a member's spec fits with room to spare
NSIG = 65


class BadRequest(Exception):
    """A control request that is not one: the reply is its text."""


def _field(msg, name, kinds, required=True):
    value = msg.get(name)
    if value is None and not required:
        return None
    # bool is an int in Python; no field of ours is a bool where an int is meant
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise BadRequest(f"{msg.get('op')!r} request: field {name!r} must be {want}")
    return value


def parse_request(data):
    """The validated request in `data` (one datagram's bytes)."""
    from . import jsonio
    if len(data) >= MAX_REQUEST:
        raise BadRequest(f"request of {len(data)} bytes or more: the limit is {MAX_REQUEST - 1}")
    try:
        msg = jsonio.loads(data)
    except (ValueError, RecursionError, MemoryError):
        raise BadRequest("request is not JSON") from None
    if not isinstance(msg, dict):
        raise BadRequest("request is not a JSON object")
    op = msg.get("op")
    if op == START:
        _field(msg, "state", (dict,), required=False)
    elif op == SIGNAL:
        signum = _field(msg, "signal", (int,))
        if not 0 <= signum < NSIG:
            raise BadRequest(f"'signal' request: no signal {signum}")
    elif op == PING:
        pass
    elif op == MEMBER:
        _check_member(msg)
    elif op == NAMESPACES:
        names = _field(msg, "names", (list,))
        unknown = [n for n in names if n not in NAMESPACE_NAMES]
        if unknown:
            raise BadRequest(f"'namespaces' request: 'names' must name namespaces of "
                             f"{', '.join(NAMESPACE_NAMES)}; not {unknown[0]!r}")
    else:
        raise BadRequest(f"unknown request {op!r}" if isinstance(op, str) else "request has no 'op'")
    return msg


def _check_member(msg):
    for name in ("cid", "bundle"):
        _field(msg, name, (str,))
    _field(msg, "spec", (dict,))
    _field(msg, "noPivot", (bool,))
    _field(msg, "console", (bool,))
    count = _field(msg, "preserveFds", (int,))
    if count < 0:
        raise BadRequest("'member' request: 'preserveFds' is negative")
    _field(msg, "oomScoreAdj", (int,), required=False)
    kinds = _field(msg, "namespaces", (list,))
    if not all(isinstance(k, str) for k in kinds):
        raise BadRequest("'member' request: 'namespaces' must be a list of strings")
    layout = _field(msg, "cgroupLayout", (list,))
    if not all(_is_layout_entry(entry) for entry in layout):
        raise BadRequest("'member' request: 'cgroupLayout' must be a list of [name, fstype, [options]]")


def _is_layout_entry(entry):
    return (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
            and isinstance(entry[1], str) and isinstance(entry[2], list)
            and all(isinstance(o, str) for o in entry[2]))


def member_fd_count(msg):
    """How many fds a valid MEMBER request carries: gofer, control, stdio,
    the console if any, the preserved fds, the namespaces."""
    return 5 + (1 if msg["console"] else 0) + msg["preserveFds"] + len(msg["namespaces"])
