"""Which OCI runtime the engines are told to use.

`E2E_RUNTIME` names the binary (default: this checkout's runsc-py). The same
tests run against runc to show they check the engines' contract, not one
runtime's habits; only where each keeps its state differs.
"""

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RuntimeUnderTest:
    path: str
    # podman decides by the binary's base name whether to pass --log-format=json
    name: str
    # where the runtime keeps state when an engine passes no --root (podman does not)
    default_root: str


_DEFAULT_ROOTS = {"runsc-py": "/run/runsc-py", "runc": "/run/runc", "crun": "/run/crun"}


def from_environment() -> RuntimeUnderTest:
    path = os.environ.get("E2E_RUNTIME") or str(REPO / ".venv" / "bin" / "runsc-py")
    name = os.path.basename(path)
    if name not in _DEFAULT_ROOTS:
        raise RuntimeError(f"E2E_RUNTIME={path}: unknown runtime {name!r} "
                           f"(the tests know {', '.join(sorted(_DEFAULT_ROOTS))})")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"E2E_RUNTIME={path} is not an executable file")
    return RuntimeUnderTest(path, name, _DEFAULT_ROOTS[name])
