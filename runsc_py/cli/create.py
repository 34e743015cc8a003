"""Create a container from an OCI bundle; its process waits for `start`."""

from .params import Arg, Opt

CREATE_OPTIONS = (
    Opt(("--bundle", "-b"), "bundle", default=".", help="path to the bundle directory"),
    Opt(("--pid-file",), "pid_file", help="file to write the container's pid to"),
    Opt(("--console-socket",), "console_socket", help="unix socket to receive the pty master"),
    Opt(("--preserve-fds",), "preserve_fds", type=int, default=0, help="pass N extra fds (3..3+N-1)"),
    Opt(("--no-pivot",), "no_pivot", flag=True, help="chroot instead of pivot_root (ramfs roots)"),
    # runsc-py never makes a session keyring: it always does what runc
    # does with --no-new-keyring, so the flag is accepted and changes nothing.
    Opt(("--no-new-keyring",), "no_new_keyring", flag=True, help="do not create a session keyring"),
)
OPTIONS = CREATE_OPTIONS
ARGS = (Arg("id"),)
USES_CGROUPS = True


def run(g, id, bundle, pid_file, console_socket, preserve_fds, no_pivot, no_new_keyring):
    from ..container.create import create
    create(g.root, id, bundle, pid_file=pid_file, console_socket=console_socket,
           preserve_fds=preserve_fds, no_pivot=no_pivot)
