"""Create and start a container; attached, wait for it and exit with its status."""

from .create import CREATE_OPTIONS
from .params import Arg, Opt

OPTIONS = CREATE_OPTIONS + (
    Opt(("--detach", "-d"), "detach", flag=True, help="return once the container runs"),
    Opt(("--keep",), "keep", flag=True, help="do not delete the container after it exits"),
)
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, bundle, pid_file, console_socket, preserve_fds, no_pivot, no_new_keyring, detach, keep):
    from ..container.run import run as run_container
    return run_container(g.root, id, bundle, detach=detach, keep=keep, pid_file=pid_file,
                         console_socket=console_socket, preserve_fds=preserve_fds, no_pivot=no_pivot)
