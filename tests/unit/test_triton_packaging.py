"""Packaging a model file as a Triton model version, and the package-model command.

The TorchScript file here is opaque bytes: packaging copies it and never loads
it (loading is tested against the real server in tests/triton).
"""

from __future__ import annotations

import ast
import json

import pytest

from modelops.cli import main
from modelops.modeldir.layout import CONFIG_NAME, MANIFEST_NAME
from modelops.modeldir.repository import verify_version_dir
from modelops.triton.config import ModelSignature, RuntimeSettings, Target, TensorSpec
from modelops.triton.packaging import package_onnx, package_torchscript, python_backend_source

SIG = ModelSignature(
    inputs=(TensorSpec(name="x", dtype="fp32", dims=(4,)),),
    outputs=(TensorSpec(name="y", dtype="fp32", dims=(2,)),),
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "src" / "model.pt"
    path.parent.mkdir()
    path.write_bytes(b"torchscript bytes")
    return path


def test_python_target_ships_model_py_and_parameter(tmp_path, model_file):
    packaged = package_torchscript(model_file, tmp_path / "repo", "fraud", SIG)
    assert (packaged.name, packaged.version, packaged.target) == ("fraud", 1, Target.PYTHON)
    files = verify_version_dir(packaged.version_dir)
    assert set(files) == {"model.pt", "model.py", CONFIG_NAME}
    assert (packaged.version_dir / "model.pt").read_bytes() == b"torchscript bytes"
    assert (packaged.version_dir / "model.py").read_bytes() == python_backend_source()
    config = (packaged.model_dir / CONFIG_NAME).read_text()
    assert 'backend: "python"' in config
    assert 'key: "torchscript_file"' in config


def test_libtorch_target_ships_only_the_torchscript(tmp_path, model_file):
    packaged = package_torchscript(
        model_file, tmp_path / "repo", "m", SIG, RuntimeSettings(), target=Target.LIBTORCH
    )
    assert set(verify_version_dir(packaged.version_dir)) == {"model.pt", CONFIG_NAME}
    assert 'platform: "pytorch_libtorch"' in (packaged.model_dir / CONFIG_NAME).read_text()


def test_onnx(tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes(b"onnx")
    packaged = package_onnx(source, tmp_path / "repo", "m", SIG, version=4)
    assert packaged.version == 4
    assert (packaged.version_dir / "model.onnx").read_bytes() == b"onnx"
    assert 'platform: "onnxruntime_onnx"' in (packaged.model_dir / CONFIG_NAME).read_text()


def test_errors(tmp_path, model_file):
    with pytest.raises(FileNotFoundError):
        package_torchscript(tmp_path / "nope.pt", tmp_path / "repo", "m", SIG)
    with pytest.raises(ValueError, match="TorchScript is served by"):
        package_torchscript(model_file, tmp_path / "repo", "m", SIG, target=Target.ONNX)


def test_generated_model_py_is_valid_python_without_torch_at_import():
    tree = ast.parse(python_backend_source())
    top_level_imports = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    # torch is imported in initialize() so a missing torch becomes a load error.
    assert "torch" not in top_level_imports
    assert "triton_python_backend_utils" in top_level_imports


def test_cli_packages_and_prints_json(tmp_path, model_file, capsys):
    rc = main(
        [
            "package-model", str(model_file), "--name", "fraud",
            "--repository", str(tmp_path / "repo"),
            "--input", "x:fp32:4", "--output", "y:float32:2",
            "--kind", "cpu", "--max-batch-size", "16", "--instances", "2",
        ]
    )  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"name": "fraud", "version": 1, "path": str(tmp_path / "repo" / "fraud" / "1")}
    config = (tmp_path / "repo" / "fraud" / CONFIG_NAME).read_text()
    assert "max_batch_size: 16" in config
    assert "count: 2\n    kind: KIND_CPU" in config


def test_cli_signature_file_and_publish_to_file_uri(tmp_path, model_file, capsys):
    sig = tmp_path / "sig.yaml"
    sig.write_text(
        "inputs: [{name: x, dtype: fp32, dims: [4]}]\n"
        "outputs: [{name: y, dtype: fp32, dims: [2]}]\n"
    )
    dest = tmp_path / "published" / "fraud"
    for expected in (1, 2):
        rc = main(
            ["package-model", str(model_file), "--name", "fraud", "--signature", str(sig),
             "--publish", f"file://{dest}"]
        )  # fmt: skip
        assert rc == 0
        out = json.loads(capsys.readouterr().out)
        assert out["published"] == {"uri": f"file://{dest}", "version": expected}
    verify_version_dir(dest / "2")
    assert (dest / "2" / MANIFEST_NAME).is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input", "x:fp32"], "NAME:DTYPE:DIM"),
        (["--input", "x:complex:4", "--output", "y:fp32:2"], "unknown data type"),
        (["--input", "x:fp32:4"], "outputs"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, model_file, capsys, extra, message):
    rc = main(
        ["package-model", str(model_file), "--name", "m", "--repository", str(tmp_path), *extra]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("modelops package-model: error: ")
    assert err.count("\n") == 1
    assert message in err
