"""The OCI state of a container (runtime-spec runtime.md, "State").

    ociVersion  the spec version the container was created with
    id          the container's id
    status      creating | created | running | stopped (+ paused, as runc)
    pid         the container's process on the host; 0 when not running
    bundle      absolute path of the bundle
    annotations the config's annotations

runc adds `rootfs`, `created` and `owner`; engines read them, so do we.
"""

# The runtime-spec version this runtime writes (state, default config).
OCI_VERSION = "1.2.1"


def oci_state(cid, status, pid, bundle, annotations, oci_version=None, **extra) -> dict:
    state = {"ociVersion": oci_version or OCI_VERSION, "id": cid, "status": status, "pid": pid or 0,
             "bundle": bundle}
    state.update(extra)
    state["annotations"] = dict(annotations or {})
    return state
