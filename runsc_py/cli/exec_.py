"""Execute a new process inside the container."""

from .params import Arg, Opt

STOP_AT_POSITIONAL = True
OPTIONS = (
    Opt(("--process", "-p"), "process", help="path to a process.json"),
    Opt(("--tty", "-t"), "tty", flag=True, help="allocate a pseudo-TTY"),
    Opt(("--console-socket",), "console_socket", help="unix socket to receive the pty master"),
    Opt(("--detach", "-d"), "detach", flag=True, help="detach from the process"),
    Opt(("--pid-file",), "pid_file", help="file to write the process id to"),
    Opt(("--cwd",), "cwd", help="current working directory in the container"),
    Opt(("--env", "-e"), "env", multiple=True, help="set an environment variable"),
    Opt(("--user", "-u"), "user", help="UID[:GID]"),
    Opt(("--additional-gids", "-g"), "additional_gids", multiple=True, type=int, help="additional gid"),
    Opt(("--cap", "-c"), "cap", multiple=True, help="add a capability"),
    Opt(("--no-new-privs",), "no_new_privs", flag=True, help="set no_new_privs"),
    Opt(("--preserve-fds",), "preserve_fds", type=int, default=0, help="pass N extra fds"),
    Opt(("--process-label",), "process_label", help="SELinux label"),
    Opt(("--apparmor",), "apparmor", help="AppArmor profile"),
    Opt(("--ignore-paused",), "ignore_paused", flag=True, help="allow exec in a paused container"),
)
ARGS = (Arg("id"), Arg("command", required=False, variadic=True))


def run(g, id, command, process, tty, console_socket, detach, pid_file, preserve_fds, ignore_paused, **flags):
    from ..container import load
    from ..container.exec import exec_process
    from .exec_process import build_process
    container = load(g.root, id)
    proc = build_process(container, process, command, tty, flags)
    proxy = None
    if proc.terminal and not console_socket and not detach:
        from ..console import ConsoleProxy
        proxy = ConsoleProxy()
    try:
        return exec_process(g.root, id, proc, detach=detach, pid_file=pid_file, console_socket=console_socket,
                            preserve_fds=preserve_fds, ignore_paused=ignore_paused, console_proxy=proxy)
    finally:
        if proxy is not None:
            proxy.close()
