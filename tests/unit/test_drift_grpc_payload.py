"""ModelInferRequest bytes -> tensors (typed contents and raw_input_contents), and skips."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import InferInput, service_pb2

from modelops.drift.grpc_payload import (
    leading_model_name,
    model_infer_parser,
    parse_model_infer,
    parse_model_infer_response,
)
from modelops.drift.payload import FeatureMapper, SkipSample


def _request(model: str = "m", **kw) -> service_pb2.ModelInferRequest:
    return service_pb2.ModelInferRequest(model_name=model, **kw)


def _typed(name: str, datatype: str, shape: list[int], field: str, values) -> object:
    inp = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    getattr(inp.contents, field).extend(values)
    return inp


def test_raw_input_contents_as_tritonclient_sends_them():
    x = np.arange(40, dtype=np.float32).reshape(2, 20)
    ids = np.array([[1], [2]], dtype=np.int64)
    req = _request()
    for name, arr in (("INPUT0", x), ("IDS", ids)):
        inp = InferInput(name, list(arr.shape), "FP32" if arr.dtype == np.float32 else "INT64")
        inp.set_data_from_numpy(arr)  # tritonclient puts the bytes in raw_input_contents
        req.inputs.append(inp._get_tensor())
        req.raw_input_contents.append(inp._get_content())
    out = parse_model_infer(req.SerializeToString())
    np.testing.assert_array_equal(out["INPUT0"], x)
    np.testing.assert_array_equal(out["IDS"], ids)
    assert out["INPUT0"].dtype == np.float32


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"),
    [
        ("FP32", "fp32_contents", [0.5, -1.0, 2.0, 3.0], np.float32),
        ("FP64", "fp64_contents", [0.5, -1.0, 2.0, 3.0], np.float64),
        ("INT32", "int_contents", [1, -2, 3, 4], np.int32),
        ("INT8", "int_contents", [1, -2, 3, 4], np.int8),
        ("INT64", "int64_contents", [1, -2, 3, 1 << 40], np.int64),
        ("UINT16", "uint_contents", [1, 2, 3, 4], np.uint16),
        ("UINT64", "uint64_contents", [1, 2, 3, 1 << 63], np.uint64),
        ("BOOL", "bool_contents", [True, False, True, True], np.bool_),
    ],
)
def test_typed_contents(datatype, field, values, dtype):
    req = _request(inputs=[_typed("X", datatype, [2, 2], field, values)])
    out = parse_model_infer(req.SerializeToString())
    np.testing.assert_array_equal(out["X"], np.array(values, dtype=dtype).reshape(2, 2))
    assert out["X"].dtype == dtype


def test_non_numeric_and_shared_memory_inputs_are_ignored_but_keep_raw_order():
    req = _request()
    names = np.array([b"a"], dtype=np.object_)
    s = InferInput("S", [1], "BYTES")
    s.set_data_from_numpy(names)
    shm = InferInput("SHM", [1, 20], "FP32")
    shm.set_shared_memory("region", 80)
    x = np.ones((1, 20), dtype=np.float32)
    f = InferInput("F", [1, 20], "FP32")
    f.set_data_from_numpy(x)
    for inp in (s, shm, f):
        req.inputs.append(inp._get_tensor())
        if inp._get_content() is not None:
            req.raw_input_contents.append(inp._get_content())
    assert len(req.raw_input_contents) == 2  # no bytes for the shared-memory input
    out = parse_model_infer(req.SerializeToString())
    assert list(out) == ["F"]
    np.testing.assert_array_equal(out["F"], x)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\xff\xff\xff", "decode"),  # not a protobuf message
        (
            _request(
                inputs=[service_pb2.ModelInferRequest.InferInputTensor(name="A", datatype="FP32")]
                * 2,
                raw_input_contents=[b"\0" * 4],
            ).SerializeToString(),
            "decode",  # fewer raw entries than inputs
        ),
        (
            _request(
                inputs=[_typed("A", "FP32", [1], "fp32_contents", [1.0])],
                raw_input_contents=[b"\0" * 4],
            ).SerializeToString(),
            "decode",  # both ways at once
        ),
        (
            _request(
                inputs=[_typed("A", "FP32", [3], "fp32_contents", [1.0, 2.0])]
            ).SerializeToString(),
            "shape",  # shape does not match the data
        ),
        (
            _request(
                inputs=[
                    service_pb2.ModelInferRequest.InferInputTensor(
                        name="A", datatype="FP32", shape=[2]
                    )
                ],
                raw_input_contents=[b"\0" * 7],
            ).SerializeToString(),
            "shape",  # raw bytes not a whole number of elements
        ),
        (
            _request(
                inputs=[_typed("A", "FP32", [-1], "fp32_contents", [1.0])]
            ).SerializeToString(),
            "shape",
        ),
        (
            _request(inputs=[_typed("A", "INT8", [1], "int_contents", [300])]).SerializeToString(),
            "overflow",  # out of range for the declared type
        ),
    ],
)
def test_unusable_requests_are_skipped_with_a_reason(message, reason):
    with pytest.raises(SkipSample) as err:
        parse_model_infer(message)
    assert err.value.reason == reason


def test_rows_reach_the_same_feature_mapper_as_http():
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    req = _request(inputs=[_typed("INPUT0", "FP32", [3, 4], "fp32_contents", x.ravel())])
    rows = FeatureMapper(["a", "b", "c", "d"]).rows(parse_model_infer(req.SerializeToString()))
    np.testing.assert_array_equal(rows, x.astype(np.float64))


def test_leading_model_name():
    assert leading_model_name(_request("fraud").SerializeToString()) == b"fraud"
    long = "m" * 300  # a two-byte length varint
    assert leading_model_name(_request(long).SerializeToString()) == long.encode()
    assert leading_model_name(_request("").SerializeToString()) is None  # field omitted
    assert leading_model_name(b"\x0a\x05ab") is None  # truncated
    assert leading_model_name(b"\x12\x01a") is None  # another field first
    assert leading_model_name(b"") is None


def test_model_parser_checks_the_name_it_could_not_read_on_the_hot_path():
    x = _typed("INPUT0", "FP32", [1], "fp32_contents", [1.0])
    other = service_pb2.ModelInferRequest(model_version="1", inputs=[x])
    # Fields written out of order, as an unusual encoder might: version first.
    unordered = other.SerializeToString() + _request("other").SerializeToString()
    assert leading_model_name(unordered) is None
    with pytest.raises(SkipSample) as err:
        model_infer_parser("watched")(unordered)
    assert err.value.reason == "unmapped"
    mine = other.SerializeToString() + _request("watched").SerializeToString()
    assert list(model_infer_parser("watched")(mine)) == ["INPUT0"]
    assert list(model_infer_parser(None)(unordered)) == ["INPUT0"]


def test_model_infer_responses_raw_and_typed_and_bytes():
    """Mirror comparisons read Triton's answers (raw) and other servers' (typed)."""
    y = np.array([[1.5], [-2.0]], dtype=np.float32)
    raw = service_pb2.ModelInferResponse(model_name="m")
    raw.outputs.add(name="Y", datatype="FP32", shape=[2, 1])
    raw.outputs.add(name="LABEL", datatype="BYTES", shape=[2])
    raw.raw_output_contents.append(y.tobytes())
    raw.raw_output_contents.append(b"\x01\x00\x00\x00a\x02\x00\x00\x00bc")
    out = parse_model_infer_response(raw.SerializeToString())
    np.testing.assert_array_equal(out["Y"], y)
    assert out["LABEL"].tolist() == [b"a", b"bc"]
    typed = service_pb2.ModelInferResponse(model_name="m")
    t = typed.outputs.add(name="Y", datatype="FP32", shape=[2, 1])
    t.contents.fp32_contents.extend([1.5, -2.0])
    np.testing.assert_array_equal(parse_model_infer_response(typed.SerializeToString())["Y"], y)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.raw_output_contents.append(b"\x00" * 3),  # 3 bytes for 2 floats
        lambda r: r.raw_output_contents.extend([b"\x00" * 8, b"x"]),  # more raw than outputs
    ],
)
def test_unreadable_model_infer_responses_are_refused(mutate):
    r = service_pb2.ModelInferResponse(model_name="m")
    r.outputs.add(name="Y", datatype="FP32", shape=[2, 1])
    mutate(r)
    with pytest.raises(SkipSample):
        parse_model_infer_response(r.SerializeToString())
    with pytest.raises(SkipSample):
        parse_model_infer_response(b"\xff\xff\xff")
