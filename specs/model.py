"""The typed model of an OCI bundle's config.json (runtime-spec 1.x).

Objects are built only by `specs.config` from a document that passed
validation, so their fields have the types declared here. Each object keeps
the JSON it came from in `raw`, so fields this model does not name are kept,
not dropped (the spec says unknown properties MUST be ignored, not lost).
Names are the spec's, in snake_case.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple = ()


@dataclass(frozen=True)
class Capabilities:
    bounding: tuple | None = None
    effective: tuple | None = None
    inheritable: tuple | None = None
    permitted: tuple | None = None
    ambient: tuple | None = None


@dataclass(frozen=True)
class Rlimit:
    type: str      # "RLIMIT_NOFILE"
    soft: int
    hard: int


@dataclass(frozen=True)
class Process:
    args: tuple
    cwd: str
    terminal: bool = False
    console_size: tuple | None = None   # (height, width)
    user: User = field(default_factory=User)
    env: tuple = ()
    capabilities: Capabilities | None = None
    rlimits: tuple = ()                 # of Rlimit
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    io_priority: dict | None = None     # {"class": "IOPRIO_CLASS_RT", "priority": 0}
    scheduler: dict | None = None
    exec_cpu_affinity: dict | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Root:
    path: str            # absolute: resolved against the bundle directory
    readonly: bool = False


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple = ()
    uid_mappings: tuple = ()
    gid_mappings: tuple = ()


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple = ()
    env: tuple = ()
    timeout: int | None = None


@dataclass(frozen=True)
class Hooks:
    prestart: tuple = ()
    create_runtime: tuple = ()
    create_container: tuple = ()
    start_container: tuple = ()
    poststart: tuple = ()
    poststop: tuple = ()


@dataclass(frozen=True)
class Namespace:
    type: str                 # "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"
    path: str | None = None


@dataclass(frozen=True)
class Device:
    path: str
    type: str                 # "c", "b", "u", "p"
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Linux:
    namespaces: tuple = ()            # of Namespace
    uid_mappings: tuple = ()          # of IdMapping
    gid_mappings: tuple = ()
    time_offsets: dict | None = None  # {"monotonic": {"secs":..,"nanosecs":..}, ...}
    devices: tuple = ()               # of Device
    cgroups_path: str | None = None
    resources: dict | None = None     # linux.resources as JSON
    rootfs_propagation: str | None = None
    seccomp: dict | None = None       # linux.seccomp as JSON
    sysctl: dict = field(default_factory=dict)
    masked_paths: tuple = ()
    readonly_paths: tuple = ()
    mount_label: str | None = None
    personality: dict | None = None
    intel_rdt: dict | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Spec:
    oci_version: str
    root: Root
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple = ()                # of Mount
    hooks: Hooks = field(default_factory=Hooks)
    annotations: dict = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
