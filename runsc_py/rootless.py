"""Rootless mode: whether this runtime runs without the host's root, and
where its state goes then.

`--rootless auto|true|false` has runc's meaning: `auto` is rootless when the
effective uid is not 0, or when it is 0 inside a user namespace that does
not map the host's root (rootless podman runs the runtime as root of such a
namespace). Decided once per command; active() reads /proc/self/uid_map
only when the effective uid is 0.
"""

import os

_SETTING = "auto"
_ACTIVE = None
_UID_MAP = None


def configure(setting: str):
    """The global --rootless value (auto, true or false), set by the CLI."""
    global _SETTING, _ACTIVE
    _SETTING, _ACTIVE = setting, None


def active() -> bool:
    global _ACTIVE
    if _ACTIVE is None:
        if _SETTING == "auto":
            _ACTIVE = os.geteuid() != 0 or not _maps_host_root()
        else:
            _ACTIVE = _SETTING == "true"
    return _ACTIVE


def _uid_map():
    """[(inside, outside, count)] of this process's user namespace; the
    initial namespace maps all ids to themselves ("0 0 4294967295")."""
    global _UID_MAP
    if _UID_MAP is None:
        with open("/proc/self/uid_map") as f:
            _UID_MAP = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    return _UID_MAP


def in_user_namespace() -> bool:
    """Whether this process is outside the initial user namespace (whose
    map is the identity of all ids): there mknod(2) of a device is refused
    even to root, as in a user namespace of the container's own."""
    return _uid_map() != [(0, 0, 4294967295)]


def _maps_host_root() -> bool:
    # Only the parent namespace's ids are visible: a namespace nested in an
    # unprivileged one that maps its parent's root counts as mapping root.
    return any(outside == 0 for _inside, outside, _count in _uid_map())


def host_uid() -> int:
    """The caller's uid in the parent user namespace (the host's, unless
    nested): names the state root outside XDG_RUNTIME_DIR, so that two
    users who are both root of their own namespaces do not share one."""
    euid = os.geteuid()
    for inside, outside, count in _uid_map():
        if inside <= euid < inside + count:
            return outside + euid - inside
    return euid


def default_root() -> str:
    """`/run/runsc-py` for root. Rootless: `$XDG_RUNTIME_DIR/runsc-py`, or,
    without XDG_RUNTIME_DIR, `/tmp/runsc-py-<uid>`, which the state layer
    uses only if this user owns it and nobody else can write it
    (state_file.check_root): another user may have made it first.

    podman calls `state` with only XDG_RUNTIME_DIR set, and its cleanup
    process may not set it at all: root always uses the fixed path so every
    caller agrees."""
    if not active():
        return "/run/runsc-py"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "runsc-py")
    return f"/tmp/runsc-py-{host_uid()}"
