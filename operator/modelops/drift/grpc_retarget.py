"""A KServe v2 ``ModelInferRequest`` message re-targeted at another model. Pure.

The gRPC counterpart of :func:`modelops.drift.inplace.retarget_head` and
:func:`~modelops.drift.inplace.with_priority`: an in-place candidate's mirrored
copy or split call goes to the same Triton under the sibling model name, with
Triton's request ``priority`` on copies. The message is rewritten at the
protobuf wire level, without a schema or a generated class (grpcio and the
relay pass messages as bytes): its top-level fields are walked, ``model_name``
(1) and ``model_version`` (2) replaced, and for a priority an existing
``parameters`` (4) entry named ``priority`` dropped and a new one appended
(protobuf allows any field order; a map entry is a repeated field 4 holding
``key`` = 1 and ``value`` = 2, an ``InferParameter`` whose ``int64_param`` is
field 2, the type Triton's gRPC frontend reads ``priority`` from). Inputs and
raw contents are copied as they are, never parsed.
"""

from __future__ import annotations


class MessageError(ValueError):
    """The bytes are not a protobuf message this module can rewrite."""


_MODEL_NAME, _MODEL_VERSION, _PARAMETERS = 1, 2, 4
_LEN = 2  # wire type of strings, bytes and messages
_PRIORITY_KEY = b"priority"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise MessageError("truncated or overlong varint in the infer request")
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _put_varint(number << 3 | _LEN) + _put_varint(len(payload)) + payload


def fields(message: bytes) -> list[tuple[int, int, int, int]]:
    """The top-level fields of a message: (number, wire type, start, end) of each whole
    field (tag included), in order. Raises :class:`MessageError` when malformed."""
    out = []
    i, n = 0, len(message)
    while i < n:
        start = i
        tag, i = _varint(message, i)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise MessageError("field number 0 in the infer request")
        if wire == 0:
            _, i = _varint(message, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == _LEN:
            length, i = _varint(message, i)
            i += length
        else:  # groups (3, 4) are not in the KServe v2 messages
            raise MessageError(f"wire type {wire} in the infer request")
        if i > n:
            raise MessageError("field beyond the end of the infer request")
        out.append((number, wire, start, i))
    return out


def _is_priority_entry(entry: bytes) -> bool:
    """Whether a ``parameters`` map entry's key is ``priority``."""
    for number, wire, start, end in fields(entry):
        if number == 1 and wire == _LEN:
            _, value_at = _varint(entry, start)  # the tag
            _, value_at = _varint(entry, value_at)  # the length
            return entry[value_at:end] == _PRIORITY_KEY
    return False


def priority_entry(priority: int) -> bytes:
    """``parameters["priority"] = InferParameter(int64_param=priority)`` as field 4."""
    value = _put_varint(2 << 3 | 0) + _put_varint(priority)  # int64_param, a varint
    return _field(_PARAMETERS, _field(1, _PRIORITY_KEY) + _field(2, value))


def retarget_message(
    message: bytes, model: str, version: str, priority: int | None = None
) -> bytes:
    """``message`` (a serialized ModelInferRequest) naming ``model`` / ``version``,
    with ``parameters["priority"]`` set when ``priority`` is given."""
    kept = []
    for number, wire, start, end in fields(message):
        if number in (_MODEL_NAME, _MODEL_VERSION) and wire == _LEN:
            continue
        if priority is not None and number == _PARAMETERS and wire == _LEN:
            _, at = _varint(message, start)
            _, at = _varint(message, at)
            if _is_priority_entry(message[at:end]):
                continue
        kept.append(message[start:end])
    head = _field(_MODEL_NAME, model.encode()) + _field(_MODEL_VERSION, version.encode())
    tail = priority_entry(priority) if priority is not None else b""
    return head + b"".join(kept) + tail


def with_model_name(message: bytes, model: str) -> bytes:
    """``message`` (a ModelInferRequest or ModelInferResponse: ``model_name`` is field 1
    of both) naming ``model``, everything else as it was."""
    kept = [
        message[start:end]
        for number, wire, start, end in fields(message)
        if not (number == _MODEL_NAME and wire == _LEN)
    ]
    return _field(_MODEL_NAME, model.encode()) + b"".join(kept)


def model_name(message: bytes) -> str | None:
    """The message's ``model_name`` (the last one, as protobuf reads it), or None."""
    name = None
    for number, wire, start, end in fields(message):
        if number == _MODEL_NAME and wire == _LEN:
            _, at = _varint(message, start)
            _, at = _varint(message, at)
            name = message[at:end].decode("utf-8", "replace")
    return name


__all__ = [
    "MessageError",
    "fields",
    "model_name",
    "priority_entry",
    "retarget_message",
    "with_model_name",
]
