"""Reading KServe v2 / Triton infer request bodies (JSON and binary) as feature rows."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest

from modelops.drift.payload import (
    FeatureMapper,
    SkipSample,
    decode_body,
    guarded,
    http_parser,
    parse_infer_request,
)


def _json_body(*inputs):
    return json.dumps({"inputs": list(inputs)}).encode()


def _binary_body(arrays: dict[str, tuple[str, np.ndarray]]):
    header = {"inputs": []}
    blobs = []
    for name, (dtype, arr) in arrays.items():
        raw = arr.tobytes()
        header["inputs"].append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": dtype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    h = json.dumps(header).encode()
    return h + b"".join(blobs), len(h)


def test_json_flat_and_nested_data():
    body = _json_body(
        {"name": "A", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
        {"name": "B", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]},
        {"name": "S", "shape": [1], "datatype": "BYTES", "data": ["hello"]},
    )
    t = parse_infer_request(body, None)
    assert set(t) == {"A", "B"}  # BYTES is not a feature
    assert t["A"].dtype == np.float32 and t["A"].shape == (2, 3)
    np.testing.assert_array_equal(t["B"], [[1, 2, 3], [4, 5, 6]])


def test_binary_extension_reads_every_numeric_type_in_order():
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.array([[1], [0]], dtype="?")
    c = np.arange(4, dtype="<f2")
    d = np.array([7, -8], dtype="<i8")
    body, hl = _binary_body(
        {"A": ("FP32", a), "B": ("BOOL", b), "C": ("FP16", c), "D": ("INT64", d)}
    )
    t = parse_infer_request(body, hl)
    np.testing.assert_array_equal(t["A"], a)
    np.testing.assert_array_equal(t["B"], b)
    np.testing.assert_array_equal(t["C"], c)
    np.testing.assert_array_equal(t["D"], d)


def test_binary_bytes_inputs_are_skipped_but_consumed():
    s = b"\x05\x00\x00\x00hello"
    x = np.arange(3, dtype="<f8")
    h = json.dumps(
        {
            "inputs": [
                {
                    "name": "S",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(s)},
                },
                {
                    "name": "X",
                    "shape": [3],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 24},
                },
            ]
        }
    ).encode()
    t = parse_infer_request(h + s + x.tobytes(), len(h))
    assert list(t) == ["X"]
    np.testing.assert_array_equal(t["X"], x)


def test_mixed_json_and_binary_inputs():
    x = np.arange(4, dtype="<i4")
    h = json.dumps(
        {
            "inputs": [
                {"name": "J", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]},
                {
                    "name": "X",
                    "shape": [4],
                    "datatype": "INT32",
                    "parameters": {"binary_data_size": 16},
                },
            ]
        }
    ).encode()
    t = parse_infer_request(h + x.tobytes(), len(h))
    np.testing.assert_array_equal(t["J"], [0.5, 1.5])
    np.testing.assert_array_equal(t["X"], x)


@pytest.mark.parametrize(
    ("body", "hl", "reason"),
    [
        (b"{not json", None, "decode"),
        (b"[1, 2]", None, "decode"),
        (b'{"inputs": 3}', None, "decode"),
        (b'{"inputs": [3]}', None, "decode"),
        (b'{"inputs": []}', 999, "decode"),
        (b'{"inputs": []}', -1, "decode"),
        (
            _json_body({"name": "A", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}),
            None,
            "shape",
        ),
        (
            _json_body({"name": "A", "shape": "2", "datatype": "FP32", "data": [1, 2]}),
            None,
            "shape",
        ),
        (
            _json_body({"name": "A", "shape": [2], "datatype": "FP32", "data": ["x", "y"]}),
            None,
            "shape",
        ),
        (
            _json_body(
                {
                    "name": "A",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ),
            None,
            "decode",
        ),
        (b"\xff\xfe", None, "decode"),
    ],
)
def test_malformed_bodies_raise_skip_with_reason(body, hl, reason):
    with pytest.raises(SkipSample) as err:
        parse_infer_request(body, hl)
    assert err.value.reason == reason


def test_shared_memory_and_unknown_types_are_ignored():
    body = _json_body(
        {
            "name": "SHM",
            "shape": [4],
            "datatype": "FP32",
            "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 16},
        },
        {"name": "BF", "shape": [1], "datatype": "BF16", "data": [1]},
    )
    assert parse_infer_request(body, None) == {}


def test_decode_body():
    raw = b'{"inputs": []}'
    assert decode_body(raw, None) is raw
    assert decode_body(raw, "identity") is raw
    assert decode_body(gzip.compress(raw), "gzip") == raw
    assert decode_body(zlib.compress(raw), "deflate") == raw
    with pytest.raises(SkipSample, match="encoding"):
        decode_body(raw, "gzip")
    with pytest.raises(SkipSample, match="encoding"):
        decode_body(raw, "br")
    with pytest.raises(SkipSample, match="encoding"):  # cut short
        decode_body(gzip.compress(raw * 100)[:-12], "gzip")


def test_decompression_stops_at_the_cap():
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(SkipSample) as err:
        decode_body(bomb, "gzip", max_bytes=1 << 20)
    assert err.value.reason == "too_large"
    ok = gzip.compress(b"1" * 1000)
    assert decode_body(ok, "gzip", max_bytes=1000) == b"1" * 1000
    with pytest.raises(SkipSample, match="too_large"):
        decode_body(ok, "gzip", max_bytes=999)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # An integer JSON number beyond INT64.
        (
            _json_body({"name": "A", "shape": [1], "datatype": "INT64", "data": [10**23]}),
            "overflow",
        ),
        # Nested deeper than the recursion limit.
        (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "recursion"),
    ],
)
def test_python_failures_on_hostile_bodies_become_skips(body, reason):
    with pytest.raises(SkipSample) as err:
        guarded(http_parser(None, None), body)
    assert err.value.reason == reason


def test_guarded_turns_any_exception_into_an_error_skip():
    def broken(_: bytes) -> dict:
        raise KeyError("bug")

    with pytest.raises(SkipSample) as err:
        guarded(broken, b"")
    assert err.value.reason == "error" and "KeyError" in str(err.value)


def test_http_parser_applies_encoding_and_header_length():
    body, hl = _binary_body({"X": ("FP32", np.ones((2, 3), np.float32))})
    t = http_parser(hl, "gzip", 1 << 20)(gzip.compress(body))
    assert t["X"].shape == (2, 3)


# -- mapping tensors to features -------------------------------------------------


def test_single_tensor_mapping_batched_and_unbatched():
    m = FeatureMapper(["a", "b", "c"])
    rows = m.rows({"X": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert rows.dtype == np.float64 and rows.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert m.rows({"X": np.arange(3)}).shape == (1, 3)
    # The first input whose last dimension matches wins; others are ignored.
    rows = m.rows({"mask": np.ones((2, 5)), "X": np.zeros((2, 3))})
    assert rows.shape == (2, 3)


def test_named_input_mapping():
    m = FeatureMapper(["a", "b", "c"], input_name="X")
    assert m.rows({"X": np.zeros((4, 3)), "Y": np.zeros((4, 3))}).shape == (4, 3)
    with pytest.raises(SkipSample, match="unmapped"):
        m.rows({"Y": np.zeros((4, 3))})
    with pytest.raises(SkipSample, match="shape"):
        m.rows({"X": np.zeros((4, 2))})


def test_one_input_per_feature_mapping():
    m = FeatureMapper(["age", "income"])
    rows = m.rows({"income": np.array([[10.0], [20.0]]), "age": np.array([1, 2])})
    assert rows.tolist() == [[1, 10], [2, 20]]
    with pytest.raises(SkipSample, match="batch size"):
        m.rows({"income": np.array([1.0]), "age": np.array([1, 2])})
    with pytest.raises(SkipSample, match="shape"):
        m.rows({"income": np.zeros((2, 2)), "age": np.zeros((2, 2))})


def test_unmappable_request():
    with pytest.raises(SkipSample, match="unmapped"):
        FeatureMapper(["a", "b"]).rows({"X": np.zeros((2, 3))})
