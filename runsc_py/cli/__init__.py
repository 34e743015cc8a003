"""The `runsc-py` command line, runc-compatible.

Start-up is the hot path: engines call the runtime several times per
container. `main` parses the plain forms engines use (`--flag value`,
`--flag=value`, known flags, right number of arguments) with a small parser
over the commands' declarations and imports only the one command module it
needs. Anything else — `--help`, unknown flags, missing arguments, combined
short flags — goes to click, built from the same declarations, which prints
the help or the usage error.
"""

import sys

from .params import GLOBAL_OPTIONS, Globals

# name -> module under runsc_py.cli; modules are imported only when used.
COMMANDS = {
    "create": "create", "start": "start", "state": "state", "kill": "kill",
    "delete": "delete", "run": "run", "exec": "exec_", "ps": "ps",
    "list": "list_", "pause": "pause", "resume": "resume", "events": "events",
    "update": "update", "features": "features", "spec": "spec", "wait": "wait",
}


class _Fallback(Exception):
    """The fast parser does not handle this command line; click will."""


def _command_module(name):
    # __import__ rather than importlib.import_module: importing importlib
    # (and warnings with it) costs more than the command module itself.
    module = f"runsc_py.cli.{COMMANDS[name]}"
    __import__(module)
    return sys.modules[module]


def _option_table(options):
    table = {}
    for opt in options:
        for n in opt.names:
            table[n] = opt
    return table


def _parse_options(argv, options, args, stop_at_positional=False):
    """Parse argv against declarations; raise _Fallback on anything unusual."""
    table = _option_table(options)
    values = {o.dest: ([] if o.multiple else False if o.flag else o.default) for o in options}
    positionals = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            positionals.extend(argv[i + 1:])
            break
        if tok.startswith("-") and tok != "-" and not (stop_at_positional and positionals):
            name, eq, inline = tok.partition("=")
            opt = table.get(name)
            if opt is None:
                raise _Fallback
            if opt.flag:
                if eq:
                    raise _Fallback
                values[opt.dest] = True
            else:
                if eq:
                    value = inline
                elif i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                else:
                    raise _Fallback
                if opt.choices and value not in opt.choices:
                    raise _Fallback
                if opt.type is not str:
                    try:
                        value = opt.type(value)
                    except ValueError:
                        raise _Fallback
                if opt.multiple:
                    values[opt.dest].append(value)
                else:
                    values[opt.dest] = value
        else:
            positionals.append(tok)
        i += 1
    for arg in args:
        if arg.variadic:
            values[arg.dest] = tuple(positionals)
            positionals = []
        elif positionals:
            values[arg.dest] = positionals.pop(0)
        elif arg.required:
            raise _Fallback
        else:
            values[arg.dest] = arg.default
    if positionals:
        raise _Fallback
    for opt in options:
        if opt.multiple:
            values[opt.dest] = tuple(values[opt.dest])
    return values


def _split_globals(argv):
    """Global options come before the command name."""
    table = _option_table(GLOBAL_OPTIONS)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name = argv[i].partition("=")[0]
        opt = table.get(name)
        if opt is None:
            raise _Fallback
        if not opt.flag and "=" not in argv[i]:
            i += 1
        i += 1
    if i >= len(argv):
        raise _Fallback
    return argv[:i], argv[i], argv[i + 1:]


def _fast_parse(argv):
    gargs, name, rest = _split_globals(argv)
    if name not in COMMANDS:
        raise _Fallback
    gvalues = _parse_options(gargs, GLOBAL_OPTIONS, ())
    module = _command_module(name)
    values = _parse_options(rest, module.OPTIONS, module.ARGS,
                            stop_at_positional=getattr(module, "STOP_AT_POSITIONAL", False))
    return Globals(**gvalues), module, values


def run_command(g, module, values) -> int:
    """Run a parsed command with the runtime's error policy."""
    from ..errors import Failure, configure_log, log, os_error_text, report
    configure_log(g.log, g.log_format, g.debug)
    try:
        if g.systemd_cgroup and getattr(module, "USES_CGROUPS", False):
            from ..errors import Unsupported
            raise Unsupported("--systemd-cgroup (a systemd cgroup manager)")
        code = module.run(g, **values)
        return code or 0
    except Failure as e:
        report(str(e))
        return 1
    except OSError as e:
        # An OSError that escaped the library is still something the host
        # did (read-only root, missing file, no space): one line naming the
        # command and the path.
        report(f"{module.__name__.rpartition('.')[2].rstrip('_')}: {os_error_text(e)}")
        return 1
    except KeyboardInterrupt:
        report("interrupted")
        return 130
    except Exception as e:  # a bug: full traceback to the log, one line to the user
        import traceback
        log.error(traceback.format_exc())
        report(f"internal error: {type(e).__name__}: {e}")
        return 1


def _version_text():
    from .. import __version__
    return f"runsc-py version {__version__}\nspec: 1.2.1"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-v"]):
        sys.stdout.write(_version_text() + "\n")
        return 0
    try:
        g, module, values = _fast_parse(argv)
    except _Fallback:
        from .clickcli import click_main
        return click_main(argv)
    return run_command(g, module, values)


def entry():
    sys.exit(main())
