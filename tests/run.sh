#!/usr/bin/env bash
# The test command: set up, then run the whole suite (unit, integration on
# the real kernel, end-to-end with podman and containerd). Needs root.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh || exit 1
.venv/bin/python -m pytest tests -q "$@"
rc=$?
# pytest exits 5 when it collected no test: that is a failure here.
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
