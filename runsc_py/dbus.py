"""A minimal, blocking D-Bus client: what the systemd cgroup driver needs.

Our own rather than jeepney: the driver makes a handful of method calls
and waits for one signal, so it needs the SASL EXTERNAL handshake, the
wire format (D-Bus specification, "Message Protocol": little-endian here,
every value aligned to its type's size, arrays prefixed by their byte
length, variants by their signature) and a read loop: ~390 lines, no
dependency, nothing imported beyond what the CLI loads already. Measured
side by side on the (loaded, 2-core) CI host: importing this module takes
5-9 ms, jeepney and jeepney.io.blocking 41-170 ms.

Two kinds of peer: a bus daemon (/run/dbus/system_bus_socket), where the
first call must be Hello and messages are routed by destination, and
systemd's private socket (/run/systemd/private), a peer-to-peer
connection straight to systemd with no Hello and no daemon.

Values: basic types are Python ints, bools, floats and strs; arrays are
lists (a{..} dicts); structs are tuples; a variant is a (signature, value)
pair.
"""

import os
import struct
import time

from _socket import AF_UNIX, SOCK_STREAM

from .linux.unix import Socket

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_AUTO_START = 0x2
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SENDER, _SIGNATURE = range(1, 9)
_HEADER_SIGNATURE = "yyyyuua(yv)"
MAX_MESSAGE = 1 << 27  # the specification's limit (128 MiB)

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1, **{k: v[1] for k, v in _FIXED.items()}}


class DBusError(Exception):
    """An ERROR reply: `name` is the D-Bus error name."""

    def __init__(self, name, text):
        super().__init__(f"{name}: {text}" if text else name)
        self.name = name
        self.text = text


class ProtocolError(Exception):
    pass


# -- signatures -----------------------------------------------------------------------------------

def split_signature(sig):
    """The complete types of a signature: "sa(sv)u" -> ["s", "a(sv)", "u"]."""
    out, i = [], 0
    while i < len(sig):
        end = _type_end(sig, i)
        out.append(sig[i:end])
        i = end
    return out


def _type_end(sig, i):
    c = sig[i] if i < len(sig) else ""
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _type_end(sig, j)
        if j >= len(sig):
            raise ProtocolError(f"unterminated {c} in signature {sig!r}")
        return j + 1
    if c in _ALIGN and c not in "({":
        return i + 1
    raise ProtocolError(f"bad signature {sig!r}")


# -- marshalling ----------------------------------------------------------------------------------

class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        self.buf.extend(b"\0" * (-len(self.buf) % n))

    def put(self, sig, value):
        c = sig[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf.extend(struct.pack("<" + fmt, value))
        elif c in "so":
            data = value.encode()
            self.pad(4)
            self.buf.extend(struct.pack("<I", len(data)) + data + b"\0")
        elif c == "g":
            data = value.encode()
            self.buf.extend(bytes([len(data)]) + data + b"\0")
        elif c == "v":
            inner, inner_value = value
            self.put("g", inner)
            self.put(inner, inner_value)
        elif c == "a":
            self._array(sig[1:], value)
        elif c in "({":
            self.pad(8)
            for part, item in zip(split_signature(sig[1:-1]), value, strict=True):
                self.put(part, item)
        else:
            raise ProtocolError(f"cannot marshal type {sig!r}")

    def _array(self, element, value):
        self.pad(4)
        at = len(self.buf)
        self.buf.extend(b"\0\0\0\0")
        self.pad(_ALIGN[element[0]])
        start = len(self.buf)
        if element[0] == "y" and isinstance(value, (bytes, bytearray)):
            self.buf.extend(value)
        else:
            items = value.items() if isinstance(value, dict) else value
            for item in items:
                self.put(element, item)
        struct.pack_into("<I", self.buf, at, len(self.buf) - start)


def marshal(signature, values):
    """The body bytes of `values` (a sequence) under `signature`."""
    w = _Writer()
    for part, value in zip(split_signature(signature), values, strict=True):
        w.put(part, value)
    return bytes(w.buf)


class _Reader:
    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def align(self, n):
        self.pos += -self.pos % n

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolError("message truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def get(self, sig):
        c = sig[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            value = struct.unpack("<" + fmt, self.take(size))[0]
            return bool(value) if c == "b" else value
        if c in "so":
            self.align(4)
            n = struct.unpack("<I", self.take(4))[0]
            return self.take(n + 1)[:-1].decode()
        if c == "g":
            n = self.take(1)[0]
            return self.take(n + 1)[:-1].decode()
        if c == "v":
            inner = self.get("g")
            return inner, self.get(inner)
        if c == "a":
            return self._array(sig[1:])
        if c in "({":
            self.align(8)
            return tuple(self.get(part) for part in split_signature(sig[1:-1]))
        raise ProtocolError(f"cannot unmarshal type {sig!r}")

    def _array(self, element):
        self.align(4)
        n = struct.unpack("<I", self.take(4))[0]
        self.align(_ALIGN[element[0]])
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError("array runs past the message")
        if element[0] == "y":
            return self.take(n)
        out = []
        while self.pos < end:
            out.append(self.get(element))
        return dict(out) if element[0] == "{" else out


def unmarshal(signature, data):
    r = _Reader(data)
    return [r.get(part) for part in split_signature(signature)]


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body")

    def __init__(self, type_, serial, fields, body=(), flags=0):
        self.type, self.serial, self.fields, self.body, self.flags = type_, serial, fields, body, flags

    @property
    def member(self):
        return self.fields.get(_MEMBER)

    @property
    def error_name(self):
        return self.fields.get(_ERROR_NAME)

    @property
    def reply_serial(self):
        return self.fields.get(_REPLY_SERIAL)

    def to_bytes(self, signature=""):
        body = marshal(signature, self.body) if signature else b""
        fields = dict(self.fields)
        if signature:
            fields[_SIGNATURE] = signature
        header = [(code, (_FIELD_TYPES[code], value)) for code, value in sorted(fields.items())]
        w = _Writer()
        for part, value in zip(split_signature(_HEADER_SIGNATURE),
                               (ord("l"), self.type, self.flags, 1, len(body), self.serial, header)):
            w.put(part, value)
        w.pad(8)
        return bytes(w.buf) + body

    @classmethod
    def parse(cls, data):
        """A whole message (see `needed` for its length)."""
        if data[:1] != b"l":
            raise ProtocolError("big-endian messages are not handled")
        r = _Reader(data)
        _endian, type_, flags, _version, _length, serial, header = (
            r.get(p) for p in split_signature(_HEADER_SIGNATURE))
        fields = {code: value for code, (_sig, value) in header}
        r.align(8)
        signature = fields.get(_SIGNATURE, "")
        body = _Reader(data[r.pos:]) if signature else None
        values = [body.get(p) for p in split_signature(signature)] if body else []
        return cls(type_, serial, fields, values, flags)


_FIELD_TYPES = {_PATH: "o", _INTERFACE: "s", _MEMBER: "s", _ERROR_NAME: "s", _REPLY_SERIAL: "u",
                _DESTINATION: "s", _SENDER: "s", _SIGNATURE: "g"}


def needed(prefix):
    """The total length of the message whose first 16 bytes are `prefix`."""
    body_length, = struct.unpack_from("<I", prefix, 4)
    fields_length, = struct.unpack_from("<I", prefix, 12)
    header = 16 + fields_length
    return header + (-header % 8) + body_length


# -- the connection ---------------------------------------------------------------------------------

class Connection:
    """One authenticated connection; `bus` says whether a daemon routes it."""

    def __init__(self, path, bus, timeout):
        self.path = path
        self.bus = bus
        self.timeout = timeout
        self.serial = 0
        self.pending = []         # messages read while waiting for another (signals)
        self.buf = b""
        self.sock = Socket(AF_UNIX, SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._authenticate()
            if bus:
                self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
        except BaseException:
            self.sock.close()
            raise

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _authenticate(self):
        """SASL EXTERNAL: the server checks the uid we name against the
        socket's peer credentials."""
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise ProtocolError(f"{self.path}: authentication refused: {line.decode(errors='replace')}")
        self.sock.sendall(b"BEGIN\r\n")

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProtocolError(f"{self.path}: connection closed during authentication")
            self.buf += chunk
            if len(self.buf) > 16384:
                raise ProtocolError(f"{self.path}: authentication line too long")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    # -- messages ---------------------------------------------------------------------------------
    def send(self, destination, path, interface, member, signature="", body=(), flags=0):
        self.serial += 1
        fields = {_PATH: path, _INTERFACE: interface, _MEMBER: member}
        if destination:
            fields[_DESTINATION] = destination
        msg = Message(METHOD_CALL, self.serial, fields, body, flags)
        self.sock.sendall(msg.to_bytes(signature))
        return self.serial

    def call(self, destination, path, interface, member, signature="", body=(), flags=0):
        """The reply's body values; an ERROR reply raises DBusError. Each
        read waits up to the connection's timeout."""
        self.sock.settimeout(self.timeout)
        serial = self.send(destination, path, interface, member, signature, body, flags)
        while True:
            msg = self._read()
            if msg.type in (METHOD_RETURN, ERROR) and msg.reply_serial == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.error_name, text)
                return msg.body
            if msg.type == SIGNAL:
                self.pending.append(msg)

    def wait_signal(self, match, deadline):
        """The first signal for which `match(msg)` is true, or None at the deadline."""
        while True:
            for i, msg in enumerate(self.pending):
                if match(msg):
                    del self.pending[i]
                    return msg
            self.pending.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                msg = self._read()
            except TimeoutError:
                return None
            if msg.type == SIGNAL:
                self.pending.append(msg)

    def _read(self):
        while len(self.buf) < 16:
            self._fill()
        total = needed(self.buf)
        if total > MAX_MESSAGE:
            raise ProtocolError(f"{self.path}: message of {total} bytes")
        while len(self.buf) < total:
            self._fill()
        data, self.buf = self.buf[:total], self.buf[total:]
        return Message.parse(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError(f"{self.path}: connection closed by the peer")
        self.buf += chunk


def connect(candidates, timeout):
    """The first of `candidates` ((path, is_bus), ...) that accepts a
    connection; None if no socket is there at all. An existing socket that
    fails the handshake raises."""
    for path, bus in candidates:
        try:
            return Connection(path, bus, timeout)
        except (ConnectionRefusedError, FileNotFoundError):
            continue  # no socket, or a stale one nobody listens on
    return None
