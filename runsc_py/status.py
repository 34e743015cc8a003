"""The container status machine, in one table.

runtime-spec (runtime.md, "State"): status is one of `creating`, `created`,
`running`, `stopped`; runc and every engine add `paused`. `stopped` is final:
the only way out is delete.
"""

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"

TRANSITIONS = {
    CREATING: frozenset({CREATED, STOPPED}),
    CREATED: frozenset({RUNNING, STOPPED}),
    RUNNING: frozenset({PAUSED, STOPPED}),
    PAUSED: frozenset({RUNNING, STOPPED}),
    STOPPED: frozenset(),
}

# Statuses in which the sandbox process is expected to be alive.
LIVE = frozenset({CREATING, CREATED, RUNNING, PAUSED})


class InvalidTransition(AssertionError):
    """A programming error: callers check the predicates first."""


def check_transition(old, new):
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"invalid status transition {old} -> {new}")


def can_start(status):
    # runtime-spec: "start ... MUST generate an error if the container is not in the created state"
    return status == CREATED


def can_kill(status):
    # runtime-spec #875 and what engines rely on: created containers can be killed too.
    return status in (CREATED, RUNNING, PAUSED)


def can_delete(status):
    # runtime-spec: "delete ... MUST generate an error if the container is not stopped"
    # runc also deletes created containers (they never ran a user process).
    return status in (CREATED, STOPPED)


def can_pause(status):
    return status == RUNNING


def can_resume(status):
    return status == PAUSED


def can_exec(status):
    return status in (CREATED, RUNNING)
