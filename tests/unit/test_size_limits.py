"""The size limits agree from config.json to the last message
(specs/config.py, "Size limits"), measured against this kernel."""

import socket

from runsc_py import jsonio, state_file
from runsc_py.linux import unix
from specs import config
from specs.state import oci_state


def largest_seqpacket_message():
    """What one SOCK_SEQPACKET message may hold on a fresh socket here."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        low, high = 1, 8 << 20
        while low < high:
            size = (low + high + 1) // 2
            try:
                a.send(b"x" * size)
                b.recv(size + 1)
                low = size
            except OSError:
                high = size - 1
        return low


def biggest_state(annotation_bytes):
    """A state whose every bounded field is as large as it may be, with
    annotations of `annotation_bytes` as JSON."""
    annotations = {"a": "x" * (annotation_bytes - len('{"a":""}'))}
    assert len(jsonio.dumps(annotations)) == annotation_bytes
    return oci_state("i" * 1024, "running", 4194304, "/" + "b" * 4095, annotations,
                     oci_version="1.2.1-" + "v" * 64, rootfs="/" + "r" * 4095,
                     created="2026-12-04T18:34:01.123456789Z", owner="4294967295")


def test_the_snapshot_and_the_config_have_one_limit():
    assert state_file.MAX_SPEC == config.MAX_CONFIG


def test_a_record_with_the_largest_annotations_is_readable():
    # Everything in a record but the annotations is bounded by ids and paths:
    # 64 KiB is far more than they take.
    assert config.MAX_ANNOTATIONS + (64 << 10) <= state_file.MAX_RECORD


def test_a_state_with_annotations_in_budget_fits_one_message_both_ways():
    largest = largest_seqpacket_message()
    assert config.MAX_MESSAGE <= largest, largest
    assert config.MAX_MESSAGE <= unix.MAX_MSG  # the receivers' buffer
    state = biggest_state(config.MAX_MESSAGE - config.STATE_FIXED_MAX)
    for message in ({"op": "start", "state": state}, {"ok": True, "state": state}):
        assert len(jsonio.dumps(message)) <= config.MAX_MESSAGE
