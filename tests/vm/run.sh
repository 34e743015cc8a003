#!/usr/bin/env bash
# The VM stage alone: pytest (default: the cgroup v2 selection) or, with
# --cmd 'COMMAND', any command in a pure cgroup v2 guest. Needs what
# tests/setup.sh installs (qemu, the Debian kernel, virtme-ng in .venv-vm).
# Documentation: tests/vm/harness.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m tests.vm.harness "$@"
