"""The client's first SETTINGS frame rewritten for Triton (modelops.drift.h2_settings)."""

from __future__ import annotations

import struct

import pytest

from modelops.drift.h2_settings import PREFACE, FirstSettings, no_table_settings


def settings_frame(*params: tuple[int, int], flags: int = 0, stream: int = 0) -> bytes:
    payload = b"".join(struct.pack(">HL", i, v) for i, v in params)
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, 0x4, flags, stream) + payload


def params(frame: bytes) -> list[tuple[int, int]]:
    payload = frame[9:]
    assert len(payload) == (frame[0] << 16 | frame[1] << 8 | frame[2])
    return [struct.unpack_from(">HL", payload, i) for i in range(0, len(payload), 6)]


HEADERS = b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88"  # a HEADERS frame that follows


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ([], [(1, 0)]),  # no size given (4096 by default): one appended
        ([(1, 4096), (4, 65535)], [(4, 65535), (1, 0)]),  # replaced
        ([(2, 0), (1, 65536), (1, 8)], [(2, 0), (1, 0)]),  # repeated: one left
    ],
)
def test_the_table_size_is_set_to_zero(sent, expected):
    fs = FirstSettings()
    out = fs.feed(PREFACE + settings_frame(*sent) + HEADERS)
    assert fs.done and out.startswith(PREFACE) and out.endswith(HEADERS)
    assert params(out[len(PREFACE) : -len(HEADERS)]) == expected


def test_bytes_are_held_until_the_frame_is_whole_then_passed_once():
    stream = PREFACE + settings_frame((4, 1 << 20)) + HEADERS
    fs, out = FirstSettings(), b""
    for i in range(len(stream)):  # one byte per read: the worst a socket can do
        if fs.done:
            out += stream[i : i + 1]
        else:
            out += fs.feed(stream[i : i + 1])
    assert out == PREFACE + settings_frame((4, 1 << 20), (1, 0)) + HEADERS


@pytest.mark.parametrize(
    "stream",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not HTTP/2: not ours to change
        PREFACE + HEADERS,  # no SETTINGS first: Triton refuses it, unchanged
        PREFACE + settings_frame(flags=0x1),  # an ACK
        PREFACE + settings_frame((1, 0), stream=3),  # on a stream
        PREFACE + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"12345",  # not whole parameters
    ],
)
def test_anything_else_passes_unchanged(stream):
    fs = FirstSettings()
    assert fs.feed(stream) == stream and fs.done


def test_no_table_settings_keeps_other_parameters_in_order():
    payload = struct.pack(">HLHL", 3, 100, 1, 4096)
    assert no_table_settings(payload) == struct.pack(">HLHL", 3, 100, 1, 0)
