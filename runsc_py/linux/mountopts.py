"""Mount options of config.json folded into new-mount-API attributes.

runtime-spec config.md, mounts: "options ... MUST be applied in the order
listed" — so options are folded left to right: `ro` then `rw` leaves the
mount writable. Options that are not flags are filesystem data (tmpfs
`size=64m`, `mode=755`) passed to fsconfig in order.
"""

from .mount import (MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
                    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
                    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MS_PRIVATE, MS_SHARED, MS_SLAVE,
                    MS_UNBINDABLE)

# option -> (attribute, set it?)
FLAG_OPTIONS = {
    "ro": (MOUNT_ATTR_RDONLY, True), "rw": (MOUNT_ATTR_RDONLY, False),
    "nosuid": (MOUNT_ATTR_NOSUID, True), "suid": (MOUNT_ATTR_NOSUID, False),
    "nodev": (MOUNT_ATTR_NODEV, True), "dev": (MOUNT_ATTR_NODEV, False),
    "noexec": (MOUNT_ATTR_NOEXEC, True), "exec": (MOUNT_ATTR_NOEXEC, False),
    "nodiratime": (MOUNT_ATTR_NODIRATIME, True), "diratime": (MOUNT_ATTR_NODIRATIME, False),
    "nosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, True), "symfollow": (MOUNT_ATTR_NOSYMFOLLOW, False),
}
# The atime modes are one field: each option replaces it.
ATIME_OPTIONS = {"relatime": MOUNT_ATTR_RELATIME, "noatime": MOUNT_ATTR_NOATIME,
          "strictatime": MOUNT_ATTR_STRICTATIME, "norelatime": MOUNT_ATTR_STRICTATIME,
          "atime": MOUNT_ATTR_STRICTATIME}
PROPAGATION_OPTIONS = {
    "private": (MS_PRIVATE, False), "rprivate": (MS_PRIVATE, True),
    "shared": (MS_SHARED, False), "rshared": (MS_SHARED, True),
    "slave": (MS_SLAVE, False), "rslave": (MS_SLAVE, True),
    "unbindable": (MS_UNBINDABLE, False), "runbindable": (MS_UNBINDABLE, True),
}
# Accepted and meaningless for a new-API mount (mount(8) vocabulary).
IGNORED_OPTIONS = {"defaults", "async", "auto", "noauto", "nouser", "user", "_netdev", "nomand",
            "silent", "loud", "iversion", "noiversion", "nolazytime"}


class MountOptions:
    """What one mount's options come to. (Not a dataclass: importing
    dataclasses costs ~8 ms of every create.)"""

    __slots__ = ("bind", "recursive", "attr_set", "attr_clr", "propagation", "data")

    def __init__(self, bind=False):
        self.bind = bind
        self.recursive = False
        self.attr_set = 0
        self.attr_clr = 0
        self.propagation = []   # [(MS_*, recursive)]
        self.data = []          # ["size=64m", "mode=755"]

    def set(self, attr, on):
        if on:
            self.attr_set |= attr
            self.attr_clr &= ~attr
        else:
            self.attr_clr |= attr
            self.attr_set &= ~attr


def parse(options, mount_type=None) -> MountOptions:
    out = MountOptions(bind=mount_type == "bind")
    for opt in options:
        if opt in ("bind", "rbind"):
            out.bind = True
            out.recursive = out.recursive or opt == "rbind"
        elif opt in FLAG_OPTIONS:
            out.set(*FLAG_OPTIONS[opt])
        elif opt in ATIME_OPTIONS:
            out.attr_clr |= MOUNT_ATTR__ATIME
            out.attr_set = (out.attr_set & ~MOUNT_ATTR__ATIME) | ATIME_OPTIONS[opt]
        elif opt in PROPAGATION_OPTIONS:
            out.propagation.append(PROPAGATION_OPTIONS[opt])
        elif opt in IGNORED_OPTIONS:
            continue
        elif opt in ("idmap", "ridmap", "tmpcopyup"):
            from ..errors import Unsupported
            raise Unsupported(f"mount option {opt!r}")
        else:
            out.data.append(opt)
    return out
