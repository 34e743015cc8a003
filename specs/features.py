"""The features document (runtime-spec features.md, features-linux.md).

It describes what this runtime implements, derived from the tables the
implementation itself uses wherever there is one, so the document cannot
claim more than the code does. Host facts (AppArmor, SELinux, the
architectures this host's libseccomp can filter) are probed.
"""

from .config import HOOK_KINDS, NAMESPACE_TYPES
from .default import OCI_VERSION
from .names import CAPABILITY_LIST, SECCOMP_ACTIONS, SECCOMP_OPS

OCI_VERSION_MIN = "1.0.0"
# The newest runtime-spec minor this runtime's validation accepts; any 1.x
# patch release is taken (see specs.config).
OCI_VERSION_MAX = "1.3.0"

def mount_options():
    from runsc_py.linux import mountopts
    return sorted(set(mountopts.FLAG_OPTIONS) | set(mountopts.ATIME_OPTIONS) | set(mountopts.PROPAGATION_OPTIONS)
                  | set(mountopts.IGNORED_OPTIONS) | {"bind", "rbind"})


def features() -> dict:
    from sandbox import confine, seccomp
    try:
        arches, flags = seccomp.supported_arches(), seccomp.supported_flags()
        seccomp_enabled = True
    except Exception:  # no libseccomp on this host: seccomp configs are refused
        arches, flags, seccomp_enabled = [], [], False
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": list(CAPABILITY_LIST),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": False},
            "seccomp": {
                "enabled": seccomp_enabled,
                "actions": list(SECCOMP_ACTIONS),
                "operators": list(SECCOMP_OPS),
                "archs": arches,
                "knownFlags": list(seccomp.KNOWN_FLAGS),
                "supportedFlags": flags,
            },
            "apparmor": {"enabled": confine.apparmor_enabled()},
            "selinux": {"enabled": confine.selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.runsc-py.version": _version(),
                        "io.github.runsc-py.devices": device_enforcement(),
                        "org.opencontainers.runtime-spec.version": OCI_VERSION,
                        # What the runtime's own processes keep once a container is
                        # created (sandbox.selfconfine); a pod's sandbox keeps all.
                        "io.github.runsc-py.sandbox.capabilities": "CAP_KILL",
                        "io.github.runsc-py.gofer.capabilities": "",
                        "io.github.runsc-py.selfconfinement": "no_new_privs,seccomp-allow-list"},
        "potentiallyUnsafeConfigAnnotations": [],
    }


def device_enforcement():
    """How linux.resources.devices is enforced on this host for this caller
    (the runtime spec's features have no field for it): the v1 devices
    controller, the cgroup v2 eBPF device filter (probed by loading one), or
    why device rules are refused."""
    from runsc_py.cgroups import current_host, devicefilter
    host = current_host()
    found = host.holder("devices")
    if found is not None and found[1] == 1:
        return "cgroup v1 devices controller"
    if host.v2 is None:
        return "none: device rules are refused (this host has no device cgroup)"
    try:
        devicefilter.Program(devicefilter.Policy()).load().close()
    except OSError as e:
        return f"none: device rules are refused (the cgroup v2 eBPF device filter cannot be loaded: " \
               f"{devicefilter.why_not(e)})"
    return "cgroup v2 eBPF device filter"


def _version():
    from runsc_py import __version__
    return __version__
