"""The refusal of commands whose behaviour lands with a later change."""

from ..errors import Failure


def not_supported_yet(command):
    raise Failure(f"{command} is not supported yet")
