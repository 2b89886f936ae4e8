"""`modelops version` prints the package version, which is pyproject.toml's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import modelops
from tests.support.cluster import REPO


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def modelops_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
    return subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )


def test_package_version_is_the_projects():
    assert modelops.__version__ == project_version()


def test_version_command_prints_the_version():
    assert modelops_cli("version").stdout == project_version() + "\n"
    parsed = json.loads(modelops_cli("version", "--output", "json").stdout)
    assert parsed["version"] == project_version()
    assert parsed["python"] == ".".join(map(str, sys.version_info[:3]))


def test_version_is_listed_in_the_help():
    assert "version" in modelops_cli("--help").stdout


def test_changelog_has_a_section_for_this_version():
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{project_version()}]" in changelog
