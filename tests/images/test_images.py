"""The built images run, each as the pods run it: uid 1000, read-only root, a tmpfs /tmp.

The images come from hack/images/build.sh (a warm run only prints; a cold one
builds, which needs root and mmdebstrap). They run in podman (Debian's,
daemonless; see tests/images/podman.py); where containers cannot run here the
tests skip, saying why. What each test proves:

* operator: the CLI and the CRD generator work; torch is not in the image.
* runtime: the init container's `modelops pull-model` installs a model from
  a file:// store into a volume; the serving container's plain
  `tritonserver --model-repository=...` (the rendered pod's command) loads it
  with the python backend and answers inference.
* trainer: `modelops train` trains on the CPU and publishes a sealed version.
* every image carries its OCI labels and an SBOM listing what it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.images.podman import Podman, unusable_reason
from tests.support.models import DOUBLING_CONFIG, DOUBLING_MODEL_PY
from tests.support.triton_server import free_ports

from modelops import __version__
from modelops.modeldir.repository import copy_into, verify_version_dir, write_version
from modelops.storage.publish import publish_version

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "images" / "build.sh"


def _build(name: str) -> dict[str, Any]:
    """The image's images.json entry, building it if its inputs changed."""
    if os.geteuid() != 0:
        pytest.skip("building the images needs root (chroot, mmdebstrap --mode=root)")
    done = subprocess.run([str(BUILD), name], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
    index = json.loads(Path(done.stdout.strip().splitlines()[-1]).read_text())
    return index[f"modelops-{name}"]


@pytest.fixture(scope="session")
def podman() -> Podman:
    reason = unusable_reason()
    if reason:
        pytest.skip(f"containers cannot run here: {reason}")
    return Podman.create()


@pytest.fixture(scope="module")
def operator_image() -> dict[str, Any]:
    return _build("operator")


@pytest.fixture(scope="module")
def runtime_image() -> dict[str, Any]:
    return _build("runtime")


@pytest.fixture(scope="module")
def trainer_image() -> dict[str, Any]:
    return _build("trainer")


def _loaded(podman: Podman, image: dict[str, Any]) -> str:
    return podman.load(image["archive"], image["ref"])


def _writable_by_pod(path: Path) -> Path:
    # The pods' volumes are group-writable for fsGroup 1000; a host directory
    # given to uid 1000 plays that part.
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 1000, 1000)
    return path


def _image_config(archive: str) -> dict[str, Any]:
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> dict[str, Any]:
            member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert member is not None
            return json.load(member)

        index_member = tar.extractfile("index.json")
        assert index_member is not None
        index = json.load(index_member)
        manifest = blob(index["manifests"][0]["digest"])
        return blob(manifest["config"]["digest"])


def _sbom_packages(image: dict[str, Any]) -> set[str]:
    sbom = json.loads(Path(image["sbom"]).read_text())
    return {p["name"].lower() for p in sbom["packages"]}


# --- metadata (no container needed) ---------------------------------------------


@pytest.mark.parametrize("name", ["operator", "runtime", "trainer"])
def test_image_is_labelled_non_root_and_listed_in_its_sbom(name):
    image = _build(name)
    config = _image_config(image["archive"])
    assert config["config"]["User"] == "1000:1000"
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.revision"]
    assert image["ref"] == f"localhost/modelops-{name}:{__version__}"
    assert image["digest"].startswith("sha256:")
    packages = _sbom_packages(image)
    assert {"modelops", "numpy", "python3.11"} <= packages
    assert ("torch" in packages) == (name != "operator")  # TorchScript in the runtime


# --- operator -------------------------------------------------------------------


def test_operator_cli_runs_read_only_as_uid_1000_without_torch(podman, operator_image):
    ref = _loaded(podman, operator_image)
    helped = podman.container(ref, ["modelops", "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "drift-monitor" in helped.stdout and "pull-model" in helped.stdout
    crds = podman.container(ref, ["modelops", "crds"])
    assert crds.returncode == 0, crds.stderr
    assert "kind: CustomResourceDefinition" in crds.stdout
    probe = podman.container(
        ref,
        [
            "python",
            "-c",
            "import importlib.util, os, pathlib\n"
            "print(os.getuid(), os.getgid(), importlib.util.find_spec('torch') is None)\n"
            "try:\n pathlib.Path('/opt/modelops/x').write_text('x')\n"
            "except OSError as e:\n print(e.errno)\n",
        ],
    )
    assert probe.returncode == 0, probe.stderr
    # uid/gid 1000, no torch, the root file system refuses writes (EROFS = 30).
    assert probe.stdout.split() == ["1000", "1000", "True", "30"]


# --- runtime --------------------------------------------------------------------


@pytest.fixture
def model_store(tmp_path) -> Path:
    """A file:// store holding version 1 of the python-backend doubling model."""
    staging = tmp_path / "packaged" / "double"
    write_version(
        staging,
        copy_into({"model.py": DOUBLING_MODEL_PY.encode()}),
        config_text='name: "double"\n' + DOUBLING_CONFIG,
    )
    store = tmp_path / "store" / "double"
    assert publish_version(staging / "1", f"file://{store}") == 1
    # The store belongs to the pod's uid, as a volume under fsGroup 1000 would
    # (publish writes its files owner-only).
    for path in [store.parent, *store.parent.rglob("*")]:
        os.chown(path, 1000, 1000)
    return store


def _wait_ready(url: str, container: str, podman: Podman, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    logs = podman.run("logs", container).stdout
    pytest.fail(f"tritonserver in the runtime image never became ready:\n{logs[-4000:]}")


def test_runtime_pulls_a_model_and_serves_it_with_the_pods_command(
    podman, runtime_image, model_store, tmp_path
):
    ref = _loaded(podman, runtime_image)
    models = _writable_by_pod(tmp_path / "models")
    # The init container, as render/deployment.py writes it (file:// instead of s3://).
    pull = [
        "modelops", "pull-model",
        "--uri", "file:///store/double", "--version", "latest",
        "--model-name", "double", "--repository", "/models", "--gpus", "0",
    ]  # fmt: skip
    pulled = podman.container(
        ref,
        pull,
        volumes=[f"{model_store.parent}:/store:ro", f"{models}:/models"],
    )
    assert pulled.returncode == 0, pulled.stderr
    verify_version_dir(models / "double" / "1", exact=False)
    # The sidecar's command is there too (it is started for real in the pods' e2e).
    sidecar = podman.container(ref, ["modelops", "drift-monitor", "--help"])
    assert sidecar.returncode == 0 and "--upstream" in sidecar.stdout, sidecar.stderr

    # The serving container: the pod's command and flags; ports on the host network.
    http, grpc, metrics = free_ports(3)
    name = f"modelops-runtime-test-{uuid.uuid4().hex[:8]}"
    serve = [
        "tritonserver", "--model-repository=/models", "--model-control-mode=none",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
        "--grpc-address=127.0.0.1",
    ]  # fmt: skip
    started = podman.container(
        ref,
        serve,
        volumes=[f"{models}:/models:ro"],
        network="host",
        detach=True,
        name=name,
    )
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{http}"
        _wait_ready(url, name, podman)
        body = json.dumps(
            {"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        ).encode()
        request = urllib.request.Request(
            f"{url}/v2/models/double/infer", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.load(resp)
        assert answer["outputs"][0]["data"] == [2.0, 4.0, 6.0]
    finally:
        podman.run("rm", "--force", "--time", "5", name, timeout=60)


# --- trainer --------------------------------------------------------------------


def test_trainer_trains_on_cpu_and_publishes_a_version(podman, trainer_image, tmp_path):
    ref = _loaded(podman, trainer_image)
    out = _writable_by_pod(tmp_path / "out")
    train = [
        "modelops", "train",
        "--entrypoint", "modelops.trainer.examples.tabular",
        "--dataset", "synthetic://tabular?rows=600&seed=1",
        "--output", "file:///out/tabular",
        "--checkpoint-dir", "/tmp/ckpt",
        "--nproc-per-node", "1",
        "--termination-log", "/tmp/termination-log",
        "--instance-kind", "cpu",
        "--hp=epochs=1", "--hp=batch_size=64", "--hp=seed=7",
    ]  # fmt: skip
    trained = podman.container(
        ref,
        train,
        volumes=[f"{out}:/out"],
        env={"OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-4000:]
    verify_version_dir(out / "tabular" / "1")
