"""gRPC ModelInfer messages re-targeted at an in-place candidate (drift/grpc_retarget.py,
InPlaceTarget's gRPC methods), read back with the real generated protobuf classes."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from modelops.drift.grpc_retarget import (
    MessageError,
    model_name,
    retarget_message,
    with_model_name,
)
from modelops.drift.inplace import MIRROR_PRIORITY, InPlaceError, InPlaceTarget


def request(priority: int | None = None, **params: str) -> bytes:
    req = service_pb2.ModelInferRequest(model_name="clf", model_version="7", id="abc")
    for key, value in params.items():
        req.parameters[key].string_param = value
    if priority is not None:
        req.parameters["priority"].int64_param = priority
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 3])
    inp.parameters["binary_data_size"].int64_param = 24
    req.outputs.add(name="SCORES")
    req.raw_input_contents.append(np.arange(6, dtype="<f4").tobytes())
    return req.SerializeToString()


def parsed(message: bytes) -> service_pb2.ModelInferRequest:
    return service_pb2.ModelInferRequest.FromString(message)


def test_a_mirrored_copy_names_the_candidate_at_the_copies_priority() -> None:
    original = parsed(request(tag="x"))
    got = parsed(InPlaceTarget("8").grpc_mirror_message(request(tag="x")))
    assert (got.model_name, got.model_version) == ("clf.candidate", "8")
    assert got.parameters["priority"].int64_param == MIRROR_PRIORITY
    assert got.parameters["tag"].string_param == "x"
    # Everything else as the client sent it.
    assert got.id == original.id and got.inputs == original.inputs
    assert got.outputs == original.outputs
    assert got.raw_input_contents == original.raw_input_contents


def test_a_priority_the_client_set_is_replaced_on_copies_and_kept_on_splits() -> None:
    target = InPlaceTarget("8")
    copy = parsed(target.grpc_mirror_message(request(priority=1)))
    assert copy.parameters["priority"].int64_param == MIRROR_PRIORITY
    split = parsed(target.grpc_split_message(request(priority=1)))
    assert (split.model_name, split.model_version) == ("clf.candidate", "8")
    assert split.parameters["priority"].int64_param == 1


def test_copies_without_priority_when_the_settings_say_so() -> None:
    got = parsed(InPlaceTarget("8", priority=False).grpc_mirror_message(request()))
    assert got.model_name == "clf.candidate" and "priority" not in got.parameters


def test_the_candidates_answer_names_the_model_the_client_called() -> None:
    resp = service_pb2.ModelInferResponse(model_name="clf.candidate", model_version="8", id="a")
    resp.outputs.add(name="SCORES", datatype="FP32", shape=[1, 1])
    resp.raw_output_contents.append(b"\x00" * 4)
    stable = service_pb2.ModelInferResponse()
    stable.CopyFrom(resp)
    stable.model_name, stable.model_version = "clf", "7"
    mended = InPlaceTarget("8").grpc_split_answer(resp.SerializeToString())
    got = service_pb2.ModelInferResponse.FromString(mended)
    assert (got.model_name, got.model_version, got.id) == ("clf", "8", "a")
    assert got.raw_output_contents == resp.raw_output_contents
    # As long as Triton's answer to the same call: the relay can put it in its place.
    assert len(mended) == len(stable.SerializeToString())


@pytest.mark.parametrize(
    "message",
    [
        b"\x0a\x05cl",  # a string beyond the end
        b"\x0b",  # a group (wire type 3)
        b"\x00\x01",  # field number 0
        b"\x08" + b"\xff" * 11,  # an endless varint
    ],
)
def test_malformed_messages_are_refused(message: bytes) -> None:
    with pytest.raises(MessageError):
        retarget_message(message, "m", "1")
    with pytest.raises(InPlaceError):
        InPlaceTarget("8").grpc_mirror_message(message)


def test_a_request_without_a_model_name_is_not_retargeted() -> None:
    with pytest.raises(InPlaceError):
        InPlaceTarget("8").grpc_split_message(b"\x1a\x01x")  # only an id


def test_model_name_and_renaming_read_the_last_name() -> None:
    twice = b"\x0a\x01a" + b"\x0a\x01b"  # protobuf: the last one wins
    assert model_name(twice) == "b"
    assert parsed(with_model_name(twice, "c")).model_name == "c"
