"""HTTP/2 and gRPC as bytes on the wire, for the gRPC relay (:mod:`~modelops.drift.grpc_proxy`).

The relay copies a client's HTTP/2 session with Triton unchanged and reads it
along; this module holds what that takes to know about the bytes, and nothing
about what the relay does with them (which streams it watches, mirrors,
splits, what it counts):

- frames (RFC 9113): the frame types and flags the relay follows;
  :class:`FrameReader`, which splits one direction's byte stream into frames
  as it arrives, cut at any byte, and can grow a header block by some
  metadata or hold a stream's frames back whole; and the frames the relay
  writes itself: a header block as HEADERS (+ CONTINUATION) frames, DATA, a
  connection-level WINDOW_UPDATE, and the drain's GOAWAY (last stream
  2^31-1, NO_ERROR: no new streams, every open one served);
- HPACK (RFC 7541): :class:`Blocks` decodes one direction's header blocks
  with ``hpack``, the decoder of the python-hyper HTTP/2 stack. Every block
  must be decoded, in order, to keep its table in step; header blocks of
  repeated calls (a few indexed bytes) are decoded once per HPACK table
  state. What the relay adds to Triton's answers (``x-modelops-version`` /
  ``x-modelops-epoch``, :func:`answer_metadata`) and the header blocks it
  re-encodes are HPACK literals *without indexing*: they leave the client's
  table untouched, so Triton's encoder and the client's decoder stay in step;
- gRPC: :class:`Messages` splits a stream's DATA into gRPC's length-prefixed
  messages (possibly split over DATA frames), :func:`grpc_status` reads an
  answer's ``grpc-status``.

What the reader cannot follow raises :class:`ObserveError` (or an error of
``hpack``'s): the relay then stops reading that connection along, and keeps
relaying it. The client's first SETTINGS frame, rewritten for Triton, is
:mod:`~modelops.drift.h2_settings`'s.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

import hpack

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HTTP/2 frame types and flags (RFC 9113 section 6).
DATA, HEADERS, RST_STREAM, _GOAWAY, _WINDOW_UPDATE, CONTINUATION = 0x0, 0x1, 0x3, 0x7, 0x8, 0x9
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20
# The frames of a split call's answer that are held back (see grpc_proxy's _Split).
_HELD_TYPES = frozenset({DATA, HEADERS, CONTINUATION, RST_STREAM})
# A frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id (with its reserved bit).
_FRAME_HEAD = struct.Struct(">HBBBL")
# Largest frame payload either peer may send (SETTINGS_MAX_FRAME_SIZE's ceiling).
_MAX_FRAME = (1 << 24) - 1
# Header blocks above this stop the observation of the connection (Triton's
# own limit on header lists is far smaller).
MAX_HEADER_BLOCK = 256 * 1024
# HPACK: how many header blocks that leave the table as it is one connection
# remembers the meaning of (per direction).
_HEADER_CACHE = 64
# The client's SETTINGS_MAX_FRAME_SIZE is not followed: a header frame grows
# by the answer's metadata only while it stays within the protocol's default.
_DEFAULT_MAX_FRAME = 16384
# Graceful shutdown (RFC 9113 section 6.8): "no new streams", every stream the
# client opened is still served (last stream id 2^31-1, NO_ERROR).
GOAWAY_FRAME = struct.pack(">HBBBLLL", 0, 8, _GOAWAY, 0, 0, 0x7FFFFFFF, 0)


class ObserveError(Exception):
    """The byte stream is not HTTP/2 as expected: stop reading along (keep relaying)."""


# -- reading frames along ----------------------------------------------------------------------


class _Wants(Protocol):
    def wanted(self, ftype: int, flags: int, stream: int) -> bool: ...

    def data(self, stream: int, chunk: memoryview) -> None: ...

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None: ...

    def target(self, stream: int) -> bytes: ...

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes: ...


class FrameReader:
    """Incremental HTTP/2 frame splitter for one direction of a connection.

    Payloads are collected only for the frames ``want.wanted`` asks for; the
    DATA of a wanted frame goes to ``want.data`` piece by piece as it
    arrives, never buffered here.
    """

    __slots__ = (
        "_buf", "_flags", "_head", "_held", "_keep", "_length", "_preface", "_raw", "_remaining",
        "_rewritten", "_stream", "_swallow", "_target", "_type", "frames", "swallowing",
    )  # fmt: skip

    def __init__(self, preface: bool) -> None:
        self._preface = len(_PREFACE) if preface else 0
        self._head = bytearray()
        self._remaining = 0  # payload bytes of the current frame still to come; 0: a header next
        self._type = self._flags = self._stream = 0
        self._buf = bytearray()
        self._keep = False
        # Rewriting (the Triton side only, with ``out``): metadata appended to
        # the frame being read (b"": none), the rewritten frame once read, and
        # the bytes of earlier reads not yet passed on (a frame head cut by a
        # read's end, or a frame to rewrite, until it is whole).
        self._target = b""
        self._rewritten: bytes | None = None
        self._held = bytearray()
        self.frames = 0  # frames read: after the first, Triton's preface is through
        # Streams whose frames are held back whole (split calls, the Triton side with
        # ``out`` only): each such frame goes to ``want.held``, which says what to pass
        # on in its place. Empty: nothing is looked up.
        self.swallowing: dict[int, Any] = {}
        self._swallow = False
        self._raw = bytearray()
        self._length = 0

    def at_boundary(self) -> bool:
        """Between two frames, with nothing held back: a frame may be inserted here."""
        return self._remaining == 0 and not self._head and not self._held and self.frames > 0

    def feed(self, data: bytes, want: _Wants, out: list[bytes | memoryview] | None = None) -> None:
        """Read ``data`` along. With ``out``, the bytes to pass on are appended to it
        instead of being passed on by the caller: the same bytes, except that the
        header blocks ``want.target`` names grow by its metadata, and that a frame
        head or a frame to rewrite cut by the end of ``data`` waits for the next
        read. If reading fails, ``out`` still gets every byte, unchanged."""
        mv = memoryview(data)
        i, n = 0, len(data)
        emit = 0  # with out: data[emit:] (after self._held) is not in out yet
        if self._preface:
            take = min(self._preface, n)
            start = len(_PREFACE) - self._preface
            if mv[:take] != _PREFACE[start : start + take]:
                raise ObserveError("not an HTTP/2 client preface")
            self._preface -= take
            i = take
        try:
            while i < n:
                if self._remaining == 0:
                    hstart = i
                    began_here = not self._head
                    if began_here and n - i >= 9:  # a whole frame header in this chunk
                        hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(data, i)
                        i += 9
                    else:
                        take = min(9 - len(self._head), n - i)
                        self._head += mv[i : i + take]
                        i += take
                        if len(self._head) < 9:
                            if out is not None:  # keep the cut head back
                                if began_here:
                                    if self._held:
                                        out.append(bytes(self._held))
                                    out.append(mv[emit:hstart])
                                    self._held = bytearray(mv[hstart:n])
                                else:
                                    self._held += mv[emit:n]
                                emit = n
                            return
                        hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(self._head)
                        self._head = bytearray()
                    self.frames += 1
                    length = (hi << 8) | lo
                    self._start(length, ftype, flags, sid, want)
                    if out is not None:
                        if self._target or self._swallow:
                            # Hold the frame back from its head on, until it is whole.
                            if hstart > emit:
                                out.append(mv[emit:hstart])
                                emit = hstart
                        elif not began_here and self._held:
                            out.append(bytes(self._held))  # the cut head of a plain frame
                            self._held = bytearray()
                    if length == 0:
                        self._end(want)
                else:
                    take = min(self._remaining, n - i)
                    if self._keep:
                        if self._type == DATA:
                            want.data(self._stream, mv[i : i + take])
                        else:
                            self._buf += mv[i : i + take]
                    if self._swallow:
                        self._raw += mv[i : i + take]
                    self._remaining -= take
                    i += take
                    if self._remaining == 0:
                        self._end(want)
                if self._rewritten is not None:
                    if out is not None:
                        out.append(self._rewritten)
                        self._held = bytearray()
                        emit = i
                    self._rewritten = None
        except BaseException:
            if out is not None:
                if self._held:
                    out.append(bytes(self._held))
                out.append(mv[emit:])
                self._held = bytearray()
            raise
        if out is not None:
            if self._target or self._swallow:
                self._held += mv[emit:n]
            else:
                if self._held:
                    out.append(bytes(self._held))
                    self._held = bytearray()
                out.append(mv[emit:n])

    def _start(self, length: int, ftype: int, flags: int, sid: int, want: _Wants) -> None:
        if length > _MAX_FRAME:
            raise ObserveError("frame too large")
        self._type, self._flags, self._stream = ftype, flags, sid & 0x7FFFFFFF
        self._remaining = self._length = length
        self._keep = want.wanted(ftype, flags, self._stream)
        swallowing = self.swallowing
        # WINDOW_UPDATEs always pass at once: the client may need them to send the rest
        # of the request that Triton's answer (and so the release of the held frames)
        # waits for.
        self._swallow = bool(swallowing) and self._stream in swallowing and ftype in _HELD_TYPES
        if self._swallow:
            self._raw = bytearray(_FRAME_HEAD.pack(length >> 8, length & 0xFF, ftype, flags, sid))
        if self._keep and ftype != DATA and length > MAX_HEADER_BLOCK:
            raise ObserveError("control frame too large to follow")
        if ftype == DATA and self._keep and flags & PADDED:
            raise ObserveError("padded DATA")  # gRPC peers do not pad; not worth following
        if (
            self._keep
            and flags & END_HEADERS
            and ftype in (HEADERS, CONTINUATION)
            and not self._swallow
        ):
            self._target = want.target(self._stream)

    def _end(self, want: _Wants) -> None:
        if self._swallow:
            self._swallow = False
            self._end_frame(want)
            raw, self._raw = bytes(self._raw), bytearray()
            self._rewritten = want.held(self._type, self._flags, self._stream, raw, self._length)
            return
        self._end_frame(want)

    def _end_frame(self, want: _Wants) -> None:
        if self._keep and self._type != DATA:
            buf, self._buf = self._buf, bytearray()
            want.frame(self._type, self._flags, self._stream, buf)
            if self._target:
                self._rewritten = grown(self._type, self._flags, self._stream, buf, self._target)
                self._target = b""
        elif self._type == DATA and self._flags & END_STREAM:
            want.frame(DATA, self._flags, self._stream, b"")


# -- frames written ----------------------------------------------------------------------------


def grown(ftype: int, flags: int, stream: int, payload: bytes | bytearray, extra: bytes) -> bytes:
    """A header frame (the last of its block) with ``extra`` appended to its block."""
    body = memoryview(payload)
    new_flags = flags
    if ftype == HEADERS and flags & PADDED:  # the padding goes: allowed, and simpler
        pad = body[0]
        body = body[1 : len(body) - pad]
        new_flags &= ~PADDED
    length = len(body) + len(extra)
    if length > _DEFAULT_MAX_FRAME:  # unchanged: the client may not take a larger frame
        n = len(payload)
        return _FRAME_HEAD.pack(n >> 8, n & 0xFF, ftype, flags, stream) + bytes(payload)
    return _FRAME_HEAD.pack(length >> 8, length & 0xFF, ftype, new_flags, stream) + body + extra


def header_frames(stream: int, block: bytes, end_stream: bool) -> bytes:
    """A header block as HEADERS (+ CONTINUATION) frames within the default frame size."""
    out = bytearray()
    first = True
    while True:
        piece, block = block[:_DEFAULT_MAX_FRAME], block[_DEFAULT_MAX_FRAME:]
        flags = (END_HEADERS if not block else 0) | (END_STREAM if first and end_stream else 0)
        n = len(piece)
        out += _FRAME_HEAD.pack(n >> 8, n & 0xFF, HEADERS if first else CONTINUATION, flags, stream)
        out += piece
        first = False
        if not block:
            return bytes(out)


def data_frames(stream: int, message: bytes) -> bytes:
    """``message`` in DATA frames within the default frame size (unpadded: grpc-core
    refuses padded DATA)."""
    out = bytearray()
    for i in range(0, len(message), _DEFAULT_MAX_FRAME):
        piece = message[i : i + _DEFAULT_MAX_FRAME]
        out += _FRAME_HEAD.pack(len(piece) >> 8, len(piece) & 0xFF, DATA, 0, stream) + piece
    return bytes(out)


def window_update(increment: int) -> bytes:
    """A connection-level WINDOW_UPDATE (stream 0)."""
    return _FRAME_HEAD.pack(0, 4, _WINDOW_UPDATE, 0, 0) + increment.to_bytes(4, "big")


# -- HPACK: header fields written --------------------------------------------------------------


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    # "Literal Header Field without Indexing, new name" (RFC 7541 6.2.2): it
    # leaves the client's HPACK table untouched, so Triton's encoder and the
    # client's decoder stay in step although the relay added it.
    return b"\x00" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value


def _visible(value: str) -> bytes:
    return "".join(c for c in value if "!" <= c <= "~").encode("ascii")


def answer_metadata(version: str, epoch: str) -> bytes:
    """``x-modelops-version`` / ``x-modelops-epoch`` as HPACK bytes for a ModelInfer answer."""
    out = b""
    if version:
        out += literal(b"x-modelops-version", _visible(version))
    if epoch:
        out += literal(b"x-modelops-epoch", _visible(epoch))
    return out


# -- HPACK: header blocks read -----------------------------------------------------------------


class Blocks:
    """One direction's HPACK decoder, and what its repeated header blocks meant.

    A block that leaves the dynamic table as it found it (a repeated call: every
    field already in the tables, or literals that are not indexed, which is all
    Triton sends once told that the client's table holds nothing, see
    :mod:`~modelops.drift.h2_settings`) means the same each time it comes while
    the table stays as it is; such blocks are remembered until a block changes
    the table. This is what keeps per-call decoding cheap: repeated calls and
    answers send the same bytes. Every other block is decoded, in order, to keep
    the table in step.
    """

    def __init__(self, meaning: Callable[[list[tuple[bytes, bytes]]], Any]) -> None:
        self.decoder = hpack.Decoder()
        # The client's encoder may use the table size Triton allows; Triton
        # enforces its own limit, so any size it accepts is followed here.
        self.decoder.max_allowed_table_size = 1 << 20
        self.meaning = meaning
        self._cache: dict[bytes, Any] = {}

    def _entries(self) -> tuple[int, int]:
        # What the table holds, cheaply: an insertion puts a new tuple first
        # (hpack's HeaderTable.add), and the one it displaces stays alive in the
        # table, so its id cannot be reused by the new one.
        entries = self.decoder.header_table.dynamic_entries
        return len(entries), id(entries[0]) if entries else 0

    def read(self, block: bytes) -> Any:
        hit = self._cache.get(block)
        if hit is not None:
            return hit[0]
        table = self.decoder.header_table
        before = self._entries(), table.maxsize
        value = self.meaning(self.decoder.decode(block, raw=True))
        if (self._entries(), table.maxsize) != before:
            self._cache.clear()  # the table changed: what other blocks mean may have too
        elif len(self._cache) < _HEADER_CACHE and not _size_update(block):
            self._cache[block] = (value,)
        return value

    def fields(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
        """Every field of a block, and whether it inserted into the table (a size
        update alone does not count: re-encoded without it, the block leaves the
        client's decoder a table at least as large as Triton's encoder uses)."""
        before = self._entries()
        maxsize = self.decoder.header_table.maxsize
        fields = self.decoder.decode(block, raw=True)
        changed = self._entries() != before
        if changed or self.decoder.header_table.maxsize != maxsize:
            self._cache.clear()
        return fields, changed


def _size_update(block: bytes) -> bool:
    """Whether a header block starts with a dynamic table size update (RFC 7541 6.3)."""
    return bool(block) and block[0] & 0xE0 == 0x20


# -- gRPC: messages inside DATA frames, and the status -----------------------------------------


# (payload, compressed, over cap): payload is the message (or, over the cap,
# its first bytes) when kept, else the message's first byte (None if empty).
Msg = tuple[bytes | int | None, bool, bool]
_HEAD_KEEP = 256  # bytes kept of a message over the cap: enough for its model name


class Messages:
    """Splits a stream's DATA bytes into gRPC messages (5-byte prefix, then the message).

    With ``keep`` the message bytes are collected (all of a message up to
    ``cap`` bytes, the first few of a larger one); without, only each
    message's first byte is noted.
    """

    __slots__ = (
        "_body", "_compressed", "_first", "_need", "_over", "_prefix", "cap", "keep", "reserve",
    )  # fmt: skip

    def __init__(self, keep: bool, cap: int, reserve: Callable[[int], bool] | None = None) -> None:
        self.keep, self.cap = keep, cap
        self.reserve = reserve  # asked before keeping a message of n bytes
        self._prefix = bytearray()
        self._need = 0  # bytes of the current message still to come
        self._body = bytearray()
        self._first: int | None = None
        self._compressed = False
        self._over = False

    def feed(self, data: memoryview, out: list[Msg]) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._need == 0:
                take = min(5 - len(self._prefix), n - i)
                self._prefix += data[i : i + take]
                i += take
                if len(self._prefix) < 5:
                    return
                self._compressed = self._prefix[0] == 1
                self._need = int.from_bytes(self._prefix[1:5], "big")
                self._over = self.keep and (
                    self._need > self.cap
                    or (self.reserve is not None and not self.reserve(self._need))
                )
                self._first = None
                self._body = bytearray()
                self._prefix.clear()
                if self._need == 0:
                    self._emit(out)
                continue
            take = min(self._need, n - i)
            if self._first is None:
                self._first = data[i]
            if self.keep:
                if not self._over:
                    self._body += data[i : i + take]
                elif len(self._body) < _HEAD_KEEP:
                    self._body += data[i : i + min(take, _HEAD_KEEP - len(self._body))]
            self._need -= take
            i += take
            if self._need == 0:
                self._emit(out)

    def _emit(self, out: list[Msg]) -> None:
        if self.keep:
            out.append((bytes(self._body), self._compressed, self._over))
        else:
            out.append((self._first, self._compressed, False))
        self._body = bytearray()


def grpc_status(fields: list[tuple[bytes, bytes]]) -> int | None:
    status = None
    for name, value in fields:
        if name == b"grpc-status":
            status = int(value) if value.isdigit() else 2  # unparsable: UNKNOWN
    return status
