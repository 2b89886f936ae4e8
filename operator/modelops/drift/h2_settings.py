"""The client's first HTTP/2 SETTINGS, as Triton gets it: no HPACK dynamic table. Pure.

Why (issue 18, the first call of a connection not split): a split call's
answer is held back by the relay and handed to the client later, re-encoded.
A header block that *inserts* into the HPACK dynamic table cannot be held
back: the blocks Triton sends after it (for other calls, passed on at once)
may refer to its entries, and the client's decoder would not have them. Triton
indexes the fields of its first answer on each connection (``content-type``,
``grpc-status``...), so the first call of every connection used to be given
up, and a client that opens one connection per call was never split.

The relay therefore tells Triton that the client's decoder table holds 0
bytes (``SETTINGS_HEADER_TABLE_SIZE = 0``, RFC 9113 6.5.2) in the client's
first SETTINGS frame. Triton's encoder then never inserts: every answer's
header block leaves the table empty, can be held back and re-encoded, and is
the same bytes each time (the relay's per-block cache keeps decoding cheap).
The client loses nothing it relies on: a smaller table is always allowed,
and the answers' header blocks grow by some 20 bytes of literals.

The client's own table (what its encoder sends Triton) is governed by
Triton's SETTINGS, untouched. Later SETTINGS frames of the client pass as
sent: if one ever raises the size again, the relay sees Triton's blocks
change the table and gives those splits up, as before (never a broken
connection).
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SETTINGS = 0x4
_ACK = 0x1
HEADER_TABLE_SIZE = 0x1
_HEAD = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_PARAM = struct.Struct(">HL")
# A first SETTINGS frame larger than this is passed on unchanged (real clients send
# a few parameters, 6 bytes each).
_MAX_SETTINGS = 1024


def no_table_settings(payload: bytes) -> bytes:
    """A SETTINGS payload with HEADER_TABLE_SIZE set to 0 (replaced, or appended)."""
    out = bytearray()
    for i in range(0, len(payload) - len(payload) % 6, 6):
        ident, value = _PARAM.unpack_from(payload, i)
        if ident != HEADER_TABLE_SIZE:
            out += _PARAM.pack(ident, value)
    out += _PARAM.pack(HEADER_TABLE_SIZE, 0)
    return bytes(out)


class FirstSettings:
    """Rewrites the start of a client's byte stream (preface, then its first SETTINGS
    frame): :meth:`feed` returns the bytes to pass on (b"" while the frame is still
    incomplete); once ``done``, the caller passes bytes on without asking."""

    __slots__ = ("_buf", "done")

    def __init__(self) -> None:
        self._buf = b""
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data
        head_end = len(PREFACE) + 9
        if not PREFACE.startswith(buf[: len(PREFACE)]):
            return self._give(buf)  # not HTTP/2 with a preface: none of ours to change
        if len(buf) < head_end:
            self._buf = buf
            return b""
        hi, lo, ftype, flags, stream = _HEAD.unpack_from(buf, len(PREFACE))
        length = (hi << 8) | lo
        if ftype != _SETTINGS or flags & _ACK or stream or length % 6 or length > _MAX_SETTINGS:
            return self._give(buf)  # not a well-formed first SETTINGS: Triton judges it
        if len(buf) < head_end + length:
            self._buf = buf
            return b""
        payload = no_table_settings(buf[head_end : head_end + length])
        n = len(payload)
        frame = _HEAD.pack(n >> 8, n & 0xFF, _SETTINGS, flags, 0) + payload
        return self._give(PREFACE + frame + buf[head_end + length :])

    def _give(self, data: bytes) -> bytes:
        self._buf = b""
        self.done = True
        return data


__all__ = ["HEADER_TABLE_SIZE", "PREFACE", "FirstSettings", "no_table_settings"]
