"""Write a default config.json into the bundle directory."""

from .params import Opt

OPTIONS = (
    Opt(("--bundle", "-b"), "bundle", default=".", help="bundle directory"),
    Opt(("--rootless",), "rootless", flag=True, help="a config for a rootless container"),
)
ARGS = ()


def run(g, bundle, rootless):
    from specs.default import write_default_spec
    write_default_spec(bundle, rootless)
