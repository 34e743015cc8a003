"""Declarations of the CLI's options and arguments.

Each command module declares its parameters once with `Opt` and `Arg`. The
same declarations build the click command (help, errors, unusual forms) and
drive the fast-path parser in `runsc_py.cli`, which handles the plain forms
engines use without importing click (click costs ~30 ms of start-up; runc
answers `state` in ~6 ms).
"""


class Opt:
    """An option: names ("--bundle", "-b"), the keyword passed to run(), and
    what it takes. (A plain class: importing dataclasses costs ~8 ms, most
    of `state`'s budget.)"""

    __slots__ = ("names", "dest", "flag", "default", "multiple", "type", "help", "choices")

    def __init__(self, names, dest, flag=False, default=None, multiple=False, type=str, help="", choices=()):
        self.names = names        # ("--bundle", "-b")
        self.dest = dest          # keyword passed to run()
        self.flag = flag          # takes no value
        self.default = default
        self.multiple = multiple
        self.type = type
        self.help = help
        self.choices = choices


class Arg:
    """A positional argument; `variadic` takes the rest of the command line."""

    __slots__ = ("dest", "required", "variadic", "default")

    def __init__(self, dest, required=True, variadic=False, default=None):
        self.dest = dest
        self.required = required
        self.variadic = variadic
        self.default = default


class Globals:
    """Global options, shared by every command."""

    def __init__(self, root=None, log=None, log_format="text", debug=False,
                 systemd_cgroup=False, rootless="auto"):
        from .. import rootless as _rootless
        _rootless.configure(rootless)
        self.root = root or _rootless.default_root()
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless


GLOBAL_OPTIONS = (
    Opt(("--root",), "root", help="root directory for storage of container state"),
    Opt(("--log",), "log", help="log file (default: none)"),
    Opt(("--log-format",), "log_format", default="text", choices=("text", "json"),
        help="log format: text or json"),
    Opt(("--debug",), "debug", flag=True, help="enable debug output in the log"),
    Opt(("--systemd-cgroup",), "systemd_cgroup", flag=True,
        help="manage cgroups with systemd: linux.cgroupsPath is slice:prefix:name"),
    Opt(("--rootless",), "rootless", default="auto", choices=("auto", "true", "false"),
        help="run without the host's root: auto (when not root of the host), true or false"),
)
