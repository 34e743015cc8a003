"""JSON for the hot paths, through the C accelerator the json package uses.

Importing json costs ~5 ms of every CLI call (json.decoder and
json.encoder compile regular expressions at import, and re imports enum),
against ~10 ms for the whole interpreter start: a third of `state`. The
accelerator module, _json, does the same parsing and compact encoding
without either. It is CPython's (the runtime needs CPython anyway: ctypes,
python-prctl); where it is missing, the json package is used.

Output matches json.dumps: compact `separators=(",", ":")` for records and
messages, `indent=2` for what people read (state, list).
"""

try:
    import _json
except ImportError:  # not CPython: the package does it all
    _json = None

_WHITESPACE = " \t\n\r"


def _no_constant(name):
    # json.loads accepts NaN and Infinity; JSON does not, nor does anything of ours.
    raise ValueError(f"{name} is not a JSON value")


def _not_serializable(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _Decoding:
    """The settings object the C scanner reads (json.JSONDecoder's fields)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)
    memo = {}


if _json is not None:
    _scan = _json.make_scanner(_Decoding())
    _encode = _json.make_encoder(None, _not_serializable, _json.encode_basestring_ascii, None, ":", ",",
                                 False, False, False)
    _string = _json.encode_basestring_ascii


def loads(data):
    """A JSON document (str or UTF-8 bytes); ValueError if it is not one,
    with json.loads's message."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "surrogatepass")  # as json.loads; a UnicodeDecodeError is a ValueError
    if _json is None:
        return _with_the_package(data)
    start = len(data) - len(data.lstrip(_WHITESPACE))
    try:
        value, end = _scan(data, start)
    except (StopIteration, SystemError):
        # Not JSON. (CPython's scanner raises json.decoder.JSONDecodeError
        # only once json.decoder is imported, SystemError before.) The
        # package parses it again, on this error path only, to say where.
        return _with_the_package(data)
    if data[end:].strip(_WHITESPACE):
        return _with_the_package(data)  # "Extra data"
    return value


def _with_the_package(data):
    import json
    return json.loads(data, parse_constant=_no_constant)


def dumps(value) -> str:
    """Compact, ASCII: json.dumps(value, separators=(",", ":"))."""
    if _json is None:
        import json
        return json.dumps(value, separators=(",", ":"))
    return "".join(_encode(value, 0))


def dumps_indented(value, level=0) -> str:
    """As json.dumps(value, indent=2)."""
    if isinstance(value, dict) and value:
        inner = "  " * (level + 1)
        items = [f"{inner}{_key(k)}: {dumps_indented(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)) and value:
        inner = "  " * (level + 1)
        items = [inner + dumps_indented(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return dumps(value)


def _key(key):
    if not isinstance(key, str):
        key = dumps(key)  # json.dumps turns int/float/bool keys into strings
    return _string(key) if _json is not None else dumps(key)
