"""update: change the resources of a created, running or paused container.

Like runc's `update`, the new values are merged into the container's
linux.resources (objects field by field, lists replaced) and the merged
whole is written to its cgroup again; device rules only when the update
gives them (they replace the old ones: the devices the container may open
change without a restart). The
merged resources replace linux.resources in the container's spec snapshot,
so `events`, a later `update` and `state` consumers see what applies."""

import json

from .. import status as st
from ..errors import Failure, NotRunning
from . import load_locked


def update(root, cid, new):
    if not isinstance(new, dict):
        raise Failure("update: the resources must be a JSON object (linux.resources)")
    container = load_locked(root, cid)
    try:
        if container.status not in (st.CREATED, st.RUNNING, st.PAUSED):
            container.persist_if_stale()
            raise NotRunning(cid)
        from .. import cgroups
        from ..cgroups.resources import merge, without_unset
        cgroup = cgroups.load(container.record.get("cgroup"))
        if cgroup is None:
            raise Failure(f'container "{cid}" has no cgroup: its resources cannot be updated')
        spec = container.sf.read_spec()
        linux = spec.setdefault("linux", {})
        merged = merge(linux.get("resources"), without_unset(new))
        _validate(spec, merged)
        if "devices" in new:
            cgroup.update(merged, previous_devices=(linux.get("resources") or {}).get("devices") or [],
                          linux_devices=_devices(linux))
        else:
            cgroup.update(merged)
        linux["resources"] = merged
        container.sf.save_spec_locked(json.dumps(spec).encode())
    finally:
        container.sf.unlock()


def _devices(linux):
    """The snapshot's linux.devices (valid since create), for their rules."""
    from specs.model import Device
    return [Device(path=d.get("path", ""), type=d.get("type"), major=d.get("major"), minor=d.get("minor"))
            for d in linux.get("devices") or ()]


def _validate(spec, merged):
    """The merged resources pass the same checks as config.json's."""
    from specs.config import ConfigError, parse_config
    doc = dict(spec, linux=dict(spec.get("linux") or {}, resources=merged))
    try:
        parse_config(json.dumps(doc), "/")
    except ConfigError as e:
        problems = [(path, what) for path, what in e.problems if path.startswith("linux.resources")]
        if not problems:
            return  # the rest of the snapshot is as it was at create
        raise Failure("update: " + "; ".join(f"{path}: {what}" for path, what in problems)) from None
