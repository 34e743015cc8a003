"""The typed model of an OCI bundle's config.json (runtime-spec 1.x).

Objects are built only by `specs.config` from a document that passed
validation, so their fields have the types declared here. Each object keeps
the JSON it came from in `raw`, so fields this model does not name are kept,
not dropped (the spec says unknown properties MUST be ignored, not lost).
Names are the spec's, in snake_case.

The classes are plain slotted value objects rather than dataclasses:
importing dataclasses and building frozen dataclasses cost ~11 ms of every
`create` (python -X importtime), the slowest part of its start-up.
"""

_REQUIRED = object()


class _Value:
    """Built by position or keyword from `_FIELDS` ((name, default) pairs;
    a default that is a class is called for a fresh value); immutable;
    equal when every field but `raw` is."""

    __slots__ = ()
    _FIELDS = ()

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._FIELDS):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._FIELDS)} arguments")
        for index, (name, default) in enumerate(self._FIELDS):
            if index < len(args):
                value = args[index]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            else:
                value = default() if isinstance(default, type) else default
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kwargs))!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _compared(self):
        return tuple(getattr(self, name) for name, _ in self._FIELDS if name != "raw")

    def __eq__(self, other):
        return type(other) is type(self) and other._compared() == self._compared()

    def __hash__(self):
        return hash(self._compared())

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._FIELDS if name != "raw")
        return f"{type(self).__name__}({fields})"


class IdMapping(_Value):
    __slots__ = ('container_id', 'host_id', 'size')
    _FIELDS = (
        ('container_id', _REQUIRED),  # int
        ('host_id', _REQUIRED),  # int
        ('size', _REQUIRED),  # int
    )


class User(_Value):
    __slots__ = ('uid', 'gid', 'umask', 'additional_gids')
    _FIELDS = (
        ('uid', 0),  # int
        ('gid', 0),  # int
        ('umask', None),  # int | None
        ('additional_gids', ()),  # tuple
    )


class Capabilities(_Value):
    __slots__ = ('bounding', 'effective', 'inheritable', 'permitted', 'ambient')
    _FIELDS = (
        ('bounding', None),  # tuple | None
        ('effective', None),  # tuple | None
        ('inheritable', None),  # tuple | None
        ('permitted', None),  # tuple | None
        ('ambient', None),  # tuple | None
    )


class Rlimit(_Value):
    __slots__ = ('type', 'soft', 'hard')
    _FIELDS = (
        ('type', _REQUIRED),  # str; "RLIMIT_NOFILE"
        ('soft', _REQUIRED),  # int
        ('hard', _REQUIRED),  # int
    )


class Process(_Value):
    __slots__ = ('args', 'cwd', 'terminal', 'console_size', 'user', 'env', 'capabilities', 'rlimits',
                 'no_new_privileges', 'oom_score_adj', 'apparmor_profile', 'selinux_label', 'io_priority',
                 'scheduler', 'exec_cpu_affinity', 'raw')
    _FIELDS = (
        ('args', _REQUIRED),  # tuple
        ('cwd', _REQUIRED),  # str
        ('terminal', False),  # bool
        ('console_size', None),  # tuple | None; (height, width)
        ('user', User),  # User
        ('env', ()),  # tuple
        ('capabilities', None),  # Capabilities | None
        ('rlimits', ()),  # tuple; of Rlimit
        ('no_new_privileges', False),  # bool
        ('oom_score_adj', None),  # int | None
        ('apparmor_profile', None),  # str | None
        ('selinux_label', None),  # str | None
        ('io_priority', None),  # dict | None; {"class": "IOPRIO_CLASS_RT", "priority": 0}
        ('scheduler', None),  # dict | None
        ('exec_cpu_affinity', None),  # dict | None
        ('raw', dict),  # dict
    )


class Root(_Value):
    __slots__ = ('path', 'readonly')
    _FIELDS = (
        ('path', _REQUIRED),  # str; absolute: resolved against the bundle directory
        ('readonly', False),  # bool
    )


class Mount(_Value):
    __slots__ = ('destination', 'type', 'source', 'options', 'uid_mappings', 'gid_mappings')
    _FIELDS = (
        ('destination', _REQUIRED),  # str
        ('type', None),  # str | None
        ('source', None),  # str | None
        ('options', ()),  # tuple
        ('uid_mappings', ()),  # tuple
        ('gid_mappings', ()),  # tuple
    )


class Hook(_Value):
    __slots__ = ('path', 'args', 'env', 'timeout')
    _FIELDS = (
        ('path', _REQUIRED),  # str
        ('args', ()),  # tuple
        ('env', ()),  # tuple
        ('timeout', None),  # int | None
    )


class Hooks(_Value):
    __slots__ = ('prestart', 'create_runtime', 'create_container', 'start_container', 'poststart',
                 'poststop')
    _FIELDS = (
        ('prestart', ()),  # tuple
        ('create_runtime', ()),  # tuple
        ('create_container', ()),  # tuple
        ('start_container', ()),  # tuple
        ('poststart', ()),  # tuple
        ('poststop', ()),  # tuple
    )


class Namespace(_Value):
    __slots__ = ('type', 'path')
    _FIELDS = (
        ('type', _REQUIRED),  # str; "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"
        ('path', None),  # str | None
    )


class Device(_Value):
    __slots__ = ('path', 'type', 'major', 'minor', 'file_mode', 'uid', 'gid')
    _FIELDS = (
        ('path', _REQUIRED),  # str
        ('type', _REQUIRED),  # str; "c", "b", "u", "p"
        ('major', None),  # int | None
        ('minor', None),  # int | None
        ('file_mode', None),  # int | None
        ('uid', None),  # int | None
        ('gid', None),  # int | None
    )


class Linux(_Value):
    __slots__ = ('namespaces', 'uid_mappings', 'gid_mappings', 'time_offsets', 'devices', 'cgroups_path',
                 'resources', 'rootfs_propagation', 'seccomp', 'sysctl', 'masked_paths', 'readonly_paths',
                 'mount_label', 'personality', 'intel_rdt', 'raw')
    _FIELDS = (
        ('namespaces', ()),  # tuple; of Namespace
        ('uid_mappings', ()),  # tuple; of IdMapping
        ('gid_mappings', ()),  # tuple
        ('time_offsets', None),  # dict | None; {"monotonic": {"secs":..,"nanosecs":..}, ...}
        ('devices', ()),  # tuple; of Device
        ('cgroups_path', None),  # str | None
        ('resources', None),  # dict | None; linux.resources as JSON
        ('rootfs_propagation', None),  # str | None
        ('seccomp', None),  # dict | None; linux.seccomp as JSON
        ('sysctl', dict),  # dict
        ('masked_paths', ()),  # tuple
        ('readonly_paths', ()),  # tuple
        ('mount_label', None),  # str | None
        ('personality', None),  # dict | None
        ('intel_rdt', None),  # dict | None
        ('raw', dict),  # dict
    )


class Spec(_Value):
    __slots__ = ('oci_version', 'root', 'process', 'hostname', 'domainname', 'mounts', 'hooks',
                 'annotations', 'linux', 'raw')
    _FIELDS = (
        ('oci_version', _REQUIRED),  # str
        ('root', _REQUIRED),  # Root
        ('process', None),  # Process | None
        ('hostname', None),  # str | None
        ('domainname', None),  # str | None
        ('mounts', ()),  # tuple; of Mount
        ('hooks', Hooks),  # Hooks
        ('annotations', dict),  # dict
        ('linux', Linux),  # Linux
        ('raw', dict),  # dict
    )
