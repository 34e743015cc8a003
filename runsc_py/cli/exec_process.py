"""The process spec of `exec`: a process.json, or the container's own
process with the command line's overrides (what runc does)."""

import json

from ..errors import Failure


def build_process(container, process_file, command, tty, flags):
    from specs.config import ConfigError, parse_process
    if process_file:
        try:
            with open(process_file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Failure(f"--process {process_file}: {(e.strerror or str(e)).lower()}") from None
        try:
            return parse_process(data)
        except ConfigError as e:
            raise Failure(str(e)) from None
    if not command:
        raise Failure("exec: a command or --process is required")
    base = container.sf.read_spec().get("process") or {}
    raw = dict(base)
    raw["args"] = list(command)
    raw["terminal"] = bool(tty)
    raw.pop("consoleSize", None)
    raw["env"] = list(base.get("env") or []) + list(flags["env"])
    if flags["cwd"]:
        raw["cwd"] = flags["cwd"]
    user = dict(base.get("user") or {"uid": 0, "gid": 0})
    if flags["user"]:
        uid, _, gid = flags["user"].partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise Failure(f"--user {flags['user']!r}: only numeric UID[:GID] is supported") from None
    if flags["additional_gids"]:
        user["additionalGids"] = list(flags["additional_gids"])
    raw["user"] = user
    if flags["cap"]:
        caps = dict(raw.get("capabilities") or {})
        # As runc: ambient only where inheritable bits exist, since an ambient
        # capability needs its inheritable bit and --cap does not add those.
        kinds = ["bounding", "effective", "permitted"] + (["ambient"] if caps.get("inheritable") else [])
        for kind in kinds:
            caps[kind] = sorted(set(caps.get(kind) or []) | set(flags["cap"]))
        raw["capabilities"] = caps
    if flags["no_new_privs"]:
        raw["noNewPrivileges"] = True
    if flags["apparmor"]:
        raw["apparmorProfile"] = flags["apparmor"]
    if flags["process_label"]:
        raw["selinuxLabel"] = flags["process_label"]
    try:
        return parse_process(json.dumps(raw).encode(), source="exec")
    except ConfigError as e:
        raise Failure(str(e)) from None
