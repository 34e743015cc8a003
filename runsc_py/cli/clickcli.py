"""The click form of the CLI, built from the same declarations as the fast
parser. It answers `--help`, usage errors and every form the fast parser
leaves to it, so both accept the same language."""

import click

from . import COMMANDS, _command_module, _version_text, run_command
from .params import GLOBAL_OPTIONS, Globals


def _click_param(opt):
    kwargs = {"help": opt.help, "default": opt.default, "show_default": False}
    if opt.flag:
        kwargs["is_flag"] = True
        kwargs["default"] = False
    elif opt.choices:
        kwargs["type"] = click.Choice(opt.choices)
    elif opt.type is not str:
        kwargs["type"] = opt.type
    if opt.multiple:
        kwargs["multiple"] = True
        kwargs.pop("default")
    return click.Option(list(opt.names) + [opt.dest], **kwargs)


def _click_arg(arg):
    if arg.variadic:
        return click.Argument([arg.dest], nargs=-1, required=arg.required, type=click.UNPROCESSED)
    if arg.required:
        return click.Argument([arg.dest], required=True)
    return click.Argument([arg.dest], required=False, default=arg.default)


class _LazyGroup(click.Group):
    """Loads a command module only when that command is invoked or listed."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = _command_module(name)
        params = [_click_param(o) for o in module.OPTIONS] + [_click_arg(a) for a in module.ARGS]
        settings = {"help_option_names": ["-h", "--help"]}
        if getattr(module, "STOP_AT_POSITIONAL", False):
            settings["allow_interspersed_args"] = False
            settings["ignore_unknown_options"] = True

        def callback(**values):
            inner = click.get_current_context()
            inner.exit(run_command(inner.obj, module, values))

        doc = (module.__doc__ or "").strip()
        return click.Command(name, params=params, callback=callback, context_settings=settings,
                             help=doc, short_help=doc.split("\n")[0])


def _group_callback(**values):
    click.get_current_context().obj = Globals(**values)


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit(0)


def click_main(argv) -> int:
    params = [_click_param(o) for o in GLOBAL_OPTIONS]
    params.append(click.Option(["--version", "-v"], is_flag=True, expose_value=False, is_eager=True,
                               callback=_print_version, help="print the version"))
    group = _LazyGroup("runsc-py", params=params, callback=_group_callback,
                       context_settings={"help_option_names": ["-h", "--help"]},
                       help="runsc-py: an OCI runtime with a sandbox and a gofer per container.")
    try:
        code = group.main(args=argv, prog_name="runsc-py", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:  # usage errors included: one line, exit 1
        from ..errors import report
        report(e.format_message())
        return 1
    except click.Abort:
        return 1
