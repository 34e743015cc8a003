"""Shell workloads for the busybox image, shared by the engines' tests.

Each prints "ready" once its traps are set, so a test signals it only
when it can react; busybox sh runs a trap between the loop's short sleeps.
"""

LOOP = "echo ready; while :; do sleep 0.1; done"
EXITS_7_ON_TERM = "trap 'echo got-term; exit 7' TERM; " + LOOP
IGNORES_TERM = "trap '' TERM; " + LOOP
