"""Loading config.json: validate the whole document, then build the model.

Validation walks the document once and collects **every** problem as
`<json.path>: <what is wrong>` (e.g. `mounts[2].destination: is required`),
so a user fixes a config in one round. The rules are the runtime spec's
(config.md, config-linux.md); where this runtime is stricter than the spec
the rule says why. Fields the spec does not name are kept (in `raw`), never
dropped: runtime-spec, "Extensibility": runtimes "MUST NOT generate an
error if they encounter an unknown property", they ignore it.

Whether a *valid* field can be applied on this host is decided later
(`sandbox.confine.check`, `runsc_py.container.create.check_supported`).
"""

import errno
import os
import stat

from runsc_py import jsonio

from . import model
from .names import CAPABILITIES, RLIMITS, SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPS

# Size limits, one set that holds from config.json to the last message (each
# is checked at create, so nothing exceeds one later; tests/unit/test_size_limits.py
# checks that they agree):
# - MAX_CONFIG: config.json as read, and its snapshot as the runtime writes it
#   (compact JSON with \u escapes, which can be larger than the file):
#   state_file.MAX_SPEC.
# - MAX_ANNOTATIONS: the annotations as JSON. The state record carries them,
#   and everything else in it is bounded by ids (1 KiB) and paths (PATH_MAX):
#   it stays far below state_file.MAX_RECORD.
# - MAX_MESSAGE: one message on the sandbox's sockets (SOCK_SEQPACKET). The
#   kernel refuses a message larger than the sender's send buffer minus 32
#   bytes (net.core.wmem_default, 208 KiB by default: 212960 bytes). The
#   container's state (annotations included) travels in one when hooks run
#   in the sandbox (createContainer, startContainer); its other fields are
#   bounded (STATE_FIXED_MAX), so with such hooks the annotations get
#   MAX_MESSAGE - STATE_FIXED_MAX.
MAX_CONFIG = 8 << 20      # bytes; runc reads any size, but a config this big is an accident or an attack
MAX_ANNOTATIONS = 1 << 20
MAX_MESSAGE = 192 << 10
STATE_FIXED_MAX = 16 << 10  # id (1 KiB), bundle path (PATH_MAX), versions, status, pid, times
SANDBOX_HOOKS = ("createContainer", "startContainer")
MAX_DEPTH = 64            # nesting of JSON values; the spec's own schema nests 6 deep
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
PROPAGATIONS = ("private", "shared", "slave", "unbindable",
                "rprivate", "rshared", "rslave", "runbindable")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
IOPRIO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
SCHED_POLICIES = ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
                  "SCHED_DEADLINE")
SCHED_FLAGS = ("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
               "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
               "SCHED_FLAG_UTIL_CLAMP_MAX")
PERSONALITY_DOMAINS = ("LINUX", "LINUX32")
# runtime-spec: ociVersion is SemVer; any 1.x release (the conformance suite
# writes 1.3.0; a strict 1.0.x check is a known pain point of crun's).
# Matched with fullmatch: `$` would also accept a trailing newline.
_SEMVER_EXTRA = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def _number(text):
    """A SemVer numeric identifier: ASCII digits, no leading zero."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def is_oci_version(text):
    """1.MINOR.PATCH with SemVer's optional -prerelease and +build parts.
    (Checked by hand: the re module costs ~4 ms of every create.)"""
    rest, plus, build = text.partition("+")
    core, dash, pre = rest.partition("-")
    for part, present in ((pre, dash), (build, plus)):
        if present and not (part and set(part) <= _SEMVER_EXTRA):
            return False
    numbers = core.split(".")
    return len(numbers) == 3 and numbers[0] == "1" and _number(numbers[1]) and _number(numbers[2])


def is_cpu_list(text):
    """A list such as `0-3,7` (blanks around the commas allowed)."""
    for item in text.split(","):
        first, dash, last = item.strip().partition("-")
        if not (first.isascii() and first.isdigit()) or (dash and not (last.isascii() and last.isdigit())):
            return False
    return True

UINT32 = (0, (1 << 32) - 1)
INT32 = (-(1 << 31), (1 << 31) - 1)
UINT64 = (0, (1 << 64) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT16 = (0, (1 << 16) - 1)


class ConfigError(Exception):
    """The problems of a document, as one line: `config.json: path: what; ...`."""

    def __init__(self, problems, source="config.json"):
        self.problems = list(problems)
        lines = [f"{path}: {what}" if path else what for path, what in self.problems]
        super().__init__("; ".join(f"{source}: {line}" if source else line for line in lines))


# -- the validator ---------------------------------------------------------------------------

class _Checker:
    """Collects problems; each check returns the value if it is usable, else None."""

    def __init__(self):
        self.problems = []

    def bad(self, path, what):
        self.problems.append((path, what))

    def field(self, obj, key, path, kind, required=False, **rules):
        """obj[key] checked as `kind` ('string', 'bool', 'int', 'object', 'array')."""
        where = f"{path}.{key}" if path else key
        if key not in obj or obj[key] is None:
            if required:
                self.bad(where, "is required")
            return None
        return self.value(obj[key], where, kind, **rules)

    def value(self, value, where, kind, range=None, choices=None, absolute=False, nonempty=False):
        if not _KIND_CHECK[kind](value):
            self.bad(where, f"must be {_KIND_NAME[kind]}, not {_json_type(value)}")
            return None
        if kind == "int" and range is not None and not range[0] <= value <= range[1]:
            self.bad(where, f"{value} is out of range [{range[0]}, {range[1]}]")
            return None
        if kind == "string":
            problem = _string_problem(value)
            if problem:
                self.bad(where, problem)
                return None
            if nonempty and not value:
                self.bad(where, "must not be empty")
                return None
            if choices is not None and value not in choices:
                self.bad(where, f"{value!r} is not one of {', '.join(choices)}")
                return None
            if absolute and not value.startswith("/"):
                self.bad(where, f"{value!r} must be an absolute path")
                return None
        if kind == "array" and nonempty and not value:
            self.bad(where, "must not be empty")
            return None
        return value

    def strings(self, obj, key, path, required=False, nonempty=False, item_nonempty=False, **rules):
        """An array of strings; returns the valid items (as a tuple) or None."""
        items = self.field(obj, key, path, "array", required=required, nonempty=nonempty)
        if items is None:
            return None
        where = f"{path}.{key}" if path else key
        out = []
        for i, item in enumerate(items):
            if self.value(item, f"{where}[{i}]", "string", nonempty=item_nonempty, **rules) is not None:
                out.append(item)
        return tuple(out)

    def objects(self, obj, key, path, check_item, required=False):
        """An array of objects, each passed to check_item(item, its path)."""
        items = self.field(obj, key, path, "array", required=required)
        if items is None:
            return []
        where = f"{path}.{key}" if path else key
        out = []
        for i, item in enumerate(items):
            item_path = f"{where}[{i}]"
            if self.value(item, item_path, "object") is not None:
                out.append(check_item(item, item_path))
        return out

    def string_map(self, obj, key, path, nonempty_keys=False):
        mapping = self.field(obj, key, path, "object")
        if mapping is None:
            return {}
        where = f"{path}.{key}" if path else key
        out = {}
        for k, v in mapping.items():
            problem = _string_problem(k)
            if nonempty_keys and not k:
                self.bad(where, "keys must not be empty")
            elif problem:
                self.bad(where, f"key {k!r} {problem}")
            elif self.value(v, f"{where}.{k}", "string") is not None:
                out[k] = v
        return out


def _string_problem(text):
    """Why `text` cannot become a C string (argv, paths, env), or None."""
    if "\0" in text:
        return "contains a NUL byte"
    try:
        text.encode()
    except UnicodeEncodeError:
        # JSON can spell an unpaired surrogate ("\ud800"); no UTF-8 byte
        # string stands for it, so exec, mount and sethostname could not take it.
        return "contains an unpaired UTF-16 surrogate"
    return None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


_KIND_CHECK = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int": _is_int,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_KIND_NAME = {"string": "a string", "bool": "a boolean", "int": "an integer", "object": "an object",
              "array": "an array"}


def _json_type(v):
    if v is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)


# -- sections --------------------------------------------------------------------------------

def _check_env(c, obj, path):
    env = c.strings(obj, "env", path)
    for i, item in enumerate(env or ()):
        # environ(7) entries are NAME=value; runc refuses others too.
        if "=" not in item or item.startswith("="):
            c.bad(f"{path}.env[{i}]", f"{item!r} is not of the form NAME=value")
    return env or ()


def _check_user(c, process, path):
    user = c.field(process, "user", path, "object")
    if user is None:
        return model.User()
    where = f"{path}.user"
    uid = c.field(user, "uid", where, "int", required=True, range=UINT32)
    gid = c.field(user, "gid", where, "int", required=True, range=UINT32)
    umask = c.field(user, "umask", where, "int", range=(0, 0o7777))
    gids = c.field(user, "additionalGids", where, "array") or []
    for i, g in enumerate(gids):
        c.value(g, f"{where}.additionalGids[{i}]", "int", range=UINT32)
    c.field(user, "username", where, "string")  # Windows only; runc ignores it on Linux
    return model.User(uid=uid or 0, gid=gid or 0, umask=umask,
                      additional_gids=tuple(g for g in gids if _is_int(g)))


def _check_capabilities(c, process, path):
    caps = c.field(process, "capabilities", path, "object")
    if caps is None:
        return None
    where = f"{path}.capabilities"
    sets = {}
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        names = c.strings(caps, kind, where)
        if names is None:
            continue
        for i, name in enumerate(names):
            if name not in CAPABILITIES:
                c.bad(f"{where}.{kind}[{i}]", f"unknown capability {name!r}")
        sets[kind] = tuple(n for n in names if n in CAPABILITIES)
    return model.Capabilities(**sets)


def _check_rlimits(c, process, path):
    seen = {}

    def rlimit(item, where):
        kind = c.field(item, "type", where, "string", required=True)
        soft = c.field(item, "soft", where, "int", required=True, range=UINT64)
        hard = c.field(item, "hard", where, "int", required=True, range=UINT64)
        if kind is not None:
            if kind not in RLIMITS:
                c.bad(f"{where}.type", f"unknown rlimit {kind!r}")
            elif kind in seen:
                # runtime-spec: "If the same type is specified multiple times, the runtime MUST error".
                c.bad(f"{where}.type", f"{kind} is also set by {seen[kind]}")
            else:
                seen[kind] = where
        if soft is not None and hard is not None and soft > hard:
            c.bad(f"{where}.soft", f"soft limit {soft} exceeds hard limit {hard}")
        return model.Rlimit(kind or "", soft or 0, hard or 0)

    return tuple(c.objects(process, "rlimits", path, rlimit))


def _check_scheduler(c, process, path):
    sched = c.field(process, "scheduler", path, "object")
    if sched is None:
        return None
    where = f"{path}.scheduler"
    c.field(sched, "policy", where, "string", required=True, choices=SCHED_POLICIES)
    c.field(sched, "nice", where, "int", range=(-20, 19))
    c.field(sched, "priority", where, "int", range=INT32)
    c.strings(sched, "flags", where, choices=SCHED_FLAGS)
    for key in ("runtime", "deadline", "period"):
        c.field(sched, key, where, "int", range=UINT64)
    return sched


def _check_io_priority(c, process, path):
    prio = c.field(process, "ioPriority", path, "object")
    if prio is None:
        return None
    where = f"{path}.ioPriority"
    c.field(prio, "class", where, "string", required=True, choices=IOPRIO_CLASSES)
    c.field(prio, "priority", where, "int", range=(0, 7))
    return prio


def _check_cpu_affinity(c, process, path):
    affinity = c.field(process, "execCPUAffinity", path, "object")
    if affinity is None:
        return None
    where = f"{path}.execCPUAffinity"
    for key in ("initial", "final"):
        value = c.field(affinity, key, where, "string")
        if value is not None and not is_cpu_list(value):
            c.bad(f"{where}.{key}", f"{value!r} is not a CPU list like 0-3,7")
    return affinity


def check_process(c, process, path="process"):
    args = c.strings(process, "args", path, required=True)
    if args is not None and not process["args"]:
        # runtime-spec config.md, process.args: "at least one entry is REQUIRED".
        c.bad(f"{path}.args", "must have at least one entry")
    cwd = c.field(process, "cwd", path, "string", required=True, absolute=True)
    terminal = c.field(process, "terminal", path, "bool")
    console = c.field(process, "consoleSize", path, "object")
    size = None
    if console is not None:
        height = c.field(console, "height", f"{path}.consoleSize", "int", required=True, range=UINT32)
        width = c.field(console, "width", f"{path}.consoleSize", "int", required=True, range=UINT32)
        size = (height or 0, width or 0)
    env = _check_env(c, process, path)
    user = _check_user(c, process, path)
    caps = _check_capabilities(c, process, path)
    rlimits = _check_rlimits(c, process, path)
    nnp = c.field(process, "noNewPrivileges", path, "bool")
    # runtime-spec: oomScoreAdj is the value of /proc/PID/oom_score_adj, -1000..1000.
    oom = c.field(process, "oomScoreAdj", path, "int", range=(-1000, 1000))
    apparmor = c.field(process, "apparmorProfile", path, "string")
    selinux = c.field(process, "selinuxLabel", path, "string")
    return model.Process(
        args=args or (), cwd=cwd or "/", terminal=bool(terminal), console_size=size, user=user, env=env,
        capabilities=caps, rlimits=rlimits, no_new_privileges=bool(nnp), oom_score_adj=oom,
        apparmor_profile=apparmor, selinux_label=selinux, io_priority=_check_io_priority(c, process, path),
        scheduler=_check_scheduler(c, process, path), exec_cpu_affinity=_check_cpu_affinity(c, process, path),
        raw=process)


def _check_id_mappings(c, obj, key, path):
    def mapping(item, where):
        cid = c.field(item, "containerID", where, "int", required=True, range=UINT32)
        hid = c.field(item, "hostID", where, "int", required=True, range=UINT32)
        # The kernel (map_write) refuses an empty range and one whose end,
        # first + size, does not fit in 32 bits; (uid_t)-1 is never mapped.
        size = c.field(item, "size", where, "int", required=True, range=(1, UINT32[1]))
        if size is not None:
            for key, first in (("containerID", cid), ("hostID", hid)):
                if first is not None and first + size > UINT32[1]:
                    c.bad(f"{where}.size", f"{key} {first} + size {size} exceeds {UINT32[1]}")
        return model.IdMapping(cid or 0, hid or 0, size or 0)
    return tuple(c.objects(obj, key, path, mapping))


def _check_mounts(c, doc):
    def mount(item, where):
        dest = c.field(item, "destination", where, "string", required=True, nonempty=True)
        kind = c.field(item, "type", where, "string")
        source = c.field(item, "source", where, "string")
        options = c.strings(item, "options", where) or ()
        is_bind = kind == "bind" or "bind" in options or "rbind" in options
        if is_bind and not source:
            c.bad(f"{where}.source", "is required for a bind mount")
        if not is_bind and not kind and dest is not None:
            # runtime-spec leaves `type` optional, but Linux mount(2) needs one
            # unless the mount is a bind.
            c.bad(f"{where}.type", "is required unless the mount is a bind mount")
        return model.Mount(destination=dest or "", type=kind, source=source, options=options,
                           uid_mappings=_check_id_mappings(c, item, "uidMappings", where),
                           gid_mappings=_check_id_mappings(c, item, "gidMappings", where))
    return tuple(c.objects(doc, "mounts", "", mount))


def _check_hooks(c, doc):
    hooks = c.field(doc, "hooks", "", "object")
    if hooks is None:
        return model.Hooks()

    def hook(item, where):
        path = c.field(item, "path", where, "string", required=True, absolute=True)
        args = c.strings(item, "args", where) or ()
        env = _check_env(c, item, where)
        # runtime-spec: "timeout ... MUST be greater than zero".
        timeout = c.field(item, "timeout", where, "int", range=(1, INT32[1]))
        return model.Hook(path=path or "", args=args, env=env, timeout=timeout)

    kinds = {}
    for kind in HOOK_KINDS:
        kinds[_snake(kind)] = tuple(c.objects(hooks, kind, "hooks", hook))
    return model.Hooks(**kinds)


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _check_namespaces(c, linux):
    seen = {}

    def namespace(item, where):
        kind = c.field(item, "type", where, "string", required=True, choices=NAMESPACE_TYPES)
        path = c.field(item, "path", where, "string", absolute=True)
        if kind is not None:
            if kind in seen:
                # runtime-spec: "If a namespace type is duplicated ... an error MUST be generated".
                c.bad(f"{where}.type", f"namespace {kind!r} is also given by {seen[kind]}")
            seen[kind] = where
        return model.Namespace(type=kind or "", path=path)

    return tuple(c.objects(linux, "namespaces", "linux", namespace))


def _check_devices(c, linux):
    def device(item, where):
        kind = c.field(item, "type", where, "string", required=True, choices=("c", "b", "u", "p"))
        path = c.field(item, "path", where, "string", required=True, absolute=True)
        # runtime-spec: major/minor are "REQUIRED unless type is p".
        needed = kind in ("c", "b", "u")
        major = c.field(item, "major", where, "int", required=needed, range=INT64)
        minor = c.field(item, "minor", where, "int", required=needed, range=INT64)
        mode = c.field(item, "fileMode", where, "int", range=(0, 0o7777))
        uid = c.field(item, "uid", where, "int", range=UINT32)
        gid = c.field(item, "gid", where, "int", range=UINT32)
        return model.Device(path=path or "", type=kind or "c", major=major, minor=minor, file_mode=mode,
                            uid=uid, gid=gid)
    return tuple(c.objects(linux, "devices", "linux", device))


def _check_time_offsets(c, linux):
    offsets = c.field(linux, "timeOffsets", "linux", "object")
    if offsets is None:
        return None
    for clock, value in offsets.items():
        if clock not in ("monotonic", "boottime"):
            c.bad("linux.timeOffsets", f"{clock!r}: only monotonic and boottime clocks have offsets")
            continue
        where = f"linux.timeOffsets.{clock}"
        if c.value(value, where, "object") is not None:
            c.field(value, "secs", where, "int", range=INT64)
            c.field(value, "nanosecs", where, "int", range=(0, 999_999_999))
    return offsets


def _check_seccomp(c, linux):
    seccomp = c.field(linux, "seccomp", "linux", "object")
    if seccomp is None:
        return None
    where = "linux.seccomp"
    default = c.field(seccomp, "defaultAction", where, "string", required=True, choices=SECCOMP_ACTIONS)
    _check_errno_ret(c, seccomp, "defaultErrnoRet", where, default)
    c.strings(seccomp, "architectures", where, choices=SECCOMP_ARCHES)
    c.strings(seccomp, "flags", where, choices=SECCOMP_FLAGS)
    c.field(seccomp, "listenerPath", where, "string", absolute=True)
    if c.field(seccomp, "listenerMetadata", where, "string") is not None and not seccomp.get("listenerPath"):
        # runtime-spec: listenerMetadata "MUST NOT be set if listenerPath is not set".
        c.bad(f"{where}.listenerMetadata", "needs linux.seccomp.listenerPath")

    def arg(item, at):
        c.field(item, "index", at, "int", required=True, range=(0, 5))
        c.field(item, "value", at, "int", required=True, range=UINT64)
        c.field(item, "valueTwo", at, "int", range=UINT64)
        c.field(item, "op", at, "string", required=True, choices=SECCOMP_OPS)

    def rule(item, at):
        c.strings(item, "names", at, required=True, nonempty=True, item_nonempty=True)
        action = c.field(item, "action", at, "string", required=True, choices=SECCOMP_ACTIONS)
        _check_errno_ret(c, item, "errnoRet", at, action)
        c.objects(item, "args", at, arg)
        if action == "SCMP_ACT_NOTIFY" and not seccomp.get("listenerPath"):
            # runtime-spec config-linux.md: listenerPath is required with SCMP_ACT_NOTIFY.
            c.bad(f"{at}.action", "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")

    c.objects(seccomp, "syscalls", where, rule)
    if seccomp.get("defaultAction") == "SCMP_ACT_NOTIFY":
        c.bad(f"{where}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    return seccomp


def _check_errno_ret(c, obj, key, path, action):
    # SECCOMP_RET_DATA, where the errno travels, is 16 bits wide: a bigger
    # value would be cut silently.
    value = c.field(obj, key, path, "int", range=UINT16)
    if value is not None and action is not None and action not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        # runtime-spec: "When the action doesn't support an errno, the
        # runtime MUST print and error and fail."
        c.bad(f"{path}.{key}", f"{action} takes no errno")


def _check_personality(c, linux):
    pers = c.field(linux, "personality", "linux", "object")
    if pers is None:
        return None
    c.field(pers, "domain", "linux.personality", "string", required=True, choices=PERSONALITY_DOMAINS)
    c.strings(pers, "flags", "linux.personality")
    return pers


def _check_resources(c, linux):
    res = c.field(linux, "resources", "linux", "object")
    if res is None:
        return None
    where = "linux.resources"

    def device_rule(item, at):
        c.field(item, "allow", at, "bool", required=True)
        c.field(item, "type", at, "string", choices=("a", "b", "c"))
        c.field(item, "major", at, "int", range=INT64)
        c.field(item, "minor", at, "int", range=INT64)
        access = c.field(item, "access", at, "string")
        if access and set(access) - set("rwm"):
            c.bad(f"{at}.access", f"{access!r} may only contain r, w and m")

    c.objects(res, "devices", where, device_rule)
    _check_ints(c, res, "memory", where, {"limit": INT64, "reservation": INT64, "swap": INT64,
                                          "kernel": INT64, "kernelTCP": INT64, "swappiness": UINT64},
                bools=("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"))
    cpu = _check_ints(c, res, "cpu", where, {"shares": UINT64, "quota": INT64, "burst": UINT64,
                                             "period": UINT64, "realtimeRuntime": INT64,
                                             "realtimePeriod": UINT64, "idle": INT64})
    if cpu is not None:
        for key in ("cpus", "mems"):
            value = c.field(cpu, key, f"{where}.cpu", "string")
            if value and not is_cpu_list(value):
                c.bad(f"{where}.cpu.{key}", f"{value!r} is not a list like 0-3,7")
    pids = c.field(res, "pids", where, "object")
    if pids is not None:
        c.field(pids, "limit", f"{where}.pids", "int", required=True, range=INT64)
    _check_block_io(c, res, where)
    c.objects(res, "hugepageLimits", where, lambda item, at: (
        c.field(item, "pageSize", at, "string", required=True, nonempty=True),
        c.field(item, "limit", at, "int", required=True, range=UINT64)))
    network = c.field(res, "network", where, "object")
    if network is not None:
        c.field(network, "classID", f"{where}.network", "int", range=UINT32)
        c.objects(network, "priorities", f"{where}.network", lambda item, at: (
            c.field(item, "name", at, "string", required=True, nonempty=True),
            c.field(item, "priority", at, "int", required=True, range=UINT32)))
    _check_rdma(c, res, where)
    c.string_map(res, "unified", where, nonempty_keys=True)
    return res


def _check_rdma(c, res, path):
    rdma = c.field(res, "rdma", path, "object")
    for device, limits in (rdma or {}).items():
        problem = _string_problem(device)
        if problem:
            c.bad(f"{path}.rdma", f"key {device!r} {problem}")
            continue
        at = f"{path}.rdma.{device}"
        if c.value(limits, at, "object") is None:
            continue
        c.field(limits, "hcaHandles", at, "int", range=UINT32)
        c.field(limits, "hcaObjects", at, "int", range=UINT32)
        if not {"hcaHandles", "hcaObjects"} & set(limits):
            # runtime-spec: "at least one of the hcaHandles or hcaObjects".
            c.bad(at, "needs hcaHandles or hcaObjects")


def _check_ints(c, parent, key, path, ints, bools=()):
    obj = c.field(parent, key, path, "object")
    if obj is None:
        return None
    where = f"{path}.{key}"
    for name, bounds in ints.items():
        c.field(obj, name, where, "int", range=bounds)
    for name in bools:
        c.field(obj, name, where, "bool")
    return obj


BLKIO_WEIGHT = (10, 1000)  # the kernel's range for blkio.weight and leaf_weight


def _check_weights(c, obj, path):
    """weight and leafWeight: 0 or BLKIO_WEIGHT. Engines write 0 for "not
    set" (Docker does for every container) and runc skips a 0 weight: the
    kernel's range applies to the weights that are written."""
    for name in ("weight", "leafWeight"):
        value = c.field(obj, name, path, "int")
        if value and not BLKIO_WEIGHT[0] <= value <= BLKIO_WEIGHT[1]:
            c.bad(f"{path}.{name}", f"{value} is out of range [{BLKIO_WEIGHT[0]}, {BLKIO_WEIGHT[1]}] "
                                    "(0 leaves it unset)")


def _check_block_io(c, res, path):
    blkio = c.field(res, "blockIO", path, "object")
    if blkio is None:
        return
    where = f"{path}.blockIO"
    _check_weights(c, blkio, where)

    def device(item, at, extra):
        c.field(item, "major", at, "int", required=True, range=INT64)
        c.field(item, "minor", at, "int", required=True, range=INT64)
        for name, (bounds, required) in extra.items():
            c.field(item, name, at, "int", required=required, range=bounds)

    c.objects(blkio, "weightDevice", where, lambda item, at: (device(item, at, {}), _check_weights(c, item, at)))
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"):
        c.objects(blkio, key, where, lambda item, at: device(item, at, {"rate": (UINT64, True)}))


def _check_linux(c, doc):
    linux = c.field(doc, "linux", "", "object")
    if linux is None:
        return model.Linux()
    namespaces = _check_namespaces(c, linux)
    uid_maps = _check_id_mappings(c, linux, "uidMappings", "linux")
    gid_maps = _check_id_mappings(c, linux, "gidMappings", "linux")
    if any(n.type == "user" and not n.path for n in namespaces) and not (uid_maps and gid_maps):
        # A new user namespace without maps has no root; runc refuses it as well.
        c.bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    elif (uid_maps or gid_maps) and not any(n.type == "user" for n in namespaces):
        c.bad("linux.uidMappings", "id mappings need a user namespace in linux.namespaces")
    propagation = c.field(linux, "rootfsPropagation", "linux", "string", choices=PROPAGATIONS)
    return model.Linux(
        namespaces=namespaces, uid_mappings=uid_maps, gid_mappings=gid_maps,
        time_offsets=_check_time_offsets(c, linux), devices=_check_devices(c, linux),
        cgroups_path=c.field(linux, "cgroupsPath", "linux", "string"),
        resources=_check_resources(c, linux), rootfs_propagation=propagation,
        seccomp=_check_seccomp(c, linux), sysctl=c.string_map(linux, "sysctl", "linux", nonempty_keys=True),
        masked_paths=c.strings(linux, "maskedPaths", "linux", absolute=True) or (),
        readonly_paths=c.strings(linux, "readonlyPaths", "linux", absolute=True) or (),
        mount_label=c.field(linux, "mountLabel", "linux", "string"),
        personality=_check_personality(c, linux),
        intel_rdt=c.field(linux, "intelRdt", "linux", "object"), raw=linux)


def _check_root(c, doc, bundle):
    root = c.field(doc, "root", "", "object", required=True)
    if root is None:
        return model.Root(path="")
    path = c.field(root, "path", "root", "string", required=True, nonempty=True)
    readonly = c.field(root, "readonly", "root", "bool")
    if path is not None:
        # runtime-spec: root.path "may be an absolute path or a relative path
        # to the bundle".
        path = os.path.normpath(os.path.join(bundle, path))
    return model.Root(path=path or "", readonly=bool(readonly))


def check_document(c, doc, bundle):
    version = c.field(doc, "ociVersion", "", "string", required=True)
    if version is not None and not is_oci_version(version):
        c.bad("ociVersion", f"{version!r} is not a 1.x version of the runtime spec")
    root = _check_root(c, doc, bundle)
    process = None
    raw_process = c.field(doc, "process", "", "object")
    if raw_process is not None:
        process = check_process(c, raw_process)
    return model.Spec(
        oci_version=version or "", root=root, process=process,
        hostname=c.field(doc, "hostname", "", "string"), domainname=c.field(doc, "domainname", "", "string"),
        mounts=_check_mounts(c, doc), hooks=_check_hooks(c, doc),
        annotations=c.string_map(doc, "annotations", "", nonempty_keys=True),
        linux=_check_linux(c, doc), raw=doc)


# -- entry points ----------------------------------------------------------------------------

def _decode(data, source):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_CONFIG:
        raise ConfigError([("", f"is larger than {MAX_CONFIG >> 20} MiB")], source)
    try:
        doc = jsonio.loads(data)  # refuses NaN and Infinity as RFC 8259 (and runc's Go) do
    except RecursionError:
        raise ConfigError([("", f"is nested more than {MAX_DEPTH} levels deep")], source) from None
    except ValueError as e:
        raise ConfigError([("", f"invalid JSON: {e}")], source) from None
    if not isinstance(doc, dict):
        raise ConfigError([("", f"the document must be a JSON object, not {_json_type(doc)}")], source)
    if _depth(doc) > MAX_DEPTH:
        raise ConfigError([("", f"is nested more than {MAX_DEPTH} levels deep")], source)
    return doc


def _depth(value, level=1):
    """Nesting depth, without recursion (a hostile document could be deep)."""
    deepest = level
    todo = [(value, level)]
    while todo:
        item, lvl = todo.pop()
        deepest = max(deepest, lvl)
        if lvl > MAX_DEPTH:
            return lvl
        if isinstance(item, dict):
            todo.extend((v, lvl + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, lvl + 1) for v in item)
    return deepest


def parse_config(data, bundle) -> model.Spec:
    """A Spec from config.json text, or ConfigError listing every problem."""
    doc = _decode(data, "config.json")
    checker = _Checker()
    spec = check_document(checker, doc, bundle)
    if not checker.problems:
        _check_sizes(checker, doc)
    if checker.problems:
        raise ConfigError(checker.problems)
    return spec


def _check_sizes(c, doc):
    """The limits at the top of this module, on what the runtime will write
    and send (compact JSON, non-ASCII as escapes), so that create refuses what
    could not be stored or sent later."""
    if len(jsonio.dumps(doc)) > MAX_CONFIG:
        c.bad("", f"is larger than {MAX_CONFIG >> 20} MiB once written as the runtime's snapshot of it "
                  f"(compact JSON, non-ASCII characters as \\u escapes)")
    annotations = doc.get("annotations")
    if not annotations:
        return
    size = len(jsonio.dumps(annotations))
    if size > MAX_ANNOTATIONS:
        c.bad("annotations", f"are {size} bytes as JSON, more than the {MAX_ANNOTATIONS >> 20} MiB "
                             f"the container's state record holds")
        return
    in_sandbox = [kind for kind in SANDBOX_HOOKS if (doc.get("hooks") or {}).get(kind)]
    budget = MAX_MESSAGE - STATE_FIXED_MAX
    if in_sandbox and size > budget:
        c.bad("annotations", f"are {size} bytes as JSON: with {' and '.join(in_sandbox)} hooks the "
                             f"container's state goes to its sandbox in one socket message, which "
                             f"holds at most {budget >> 10} KiB of annotations")


def parse_process(data, source="process.json") -> model.Process:
    """A Process from a process.json (exec --process), or ConfigError."""
    doc = _decode(data, source)
    checker = _Checker()
    process = check_process(checker, doc, path="process")
    if checker.problems:
        raise ConfigError(checker.problems, source)
    return process


def load_bundle(bundle) -> model.Spec:
    """The Spec of the bundle at `bundle` (an absolute path), with root.path
    resolved and checked to be a directory."""
    problem = _not_a_directory(bundle)
    if problem:
        raise ConfigError([("", f"bundle {bundle} {problem}")], source=None)
    path = os.path.join(bundle, "config.json")
    try:
        data = _read_regular(path)
    except OSError as e:
        raise ConfigError([("", f"{path}: {(e.strerror or str(e)).lower()}")], source=None) from None
    spec = parse_config(data, bundle)
    problem = _not_a_directory(spec.root.path)
    if problem:
        raise ConfigError([("root.path", f"{spec.root.path} {problem}")])
    return spec


def _read_regular(path):
    """At most MAX_CONFIG + 1 bytes of the regular file `path`. O_NONBLOCK:
    a FIFO planted as config.json must not hang the runtime."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_CONFIG + 1)
    finally:
        os.close(fd)


def _not_a_directory(path):
    """Why `path` is not a directory one can use, or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"is not accessible: {(e.strerror or str(e)).lower()}"
    return None if stat.S_ISDIR(mode) else "is not a directory"
