"""The import contracts inside render/ cover every module (pyproject.toml [tool.importlinter]).

The contracts that keep render.training apart from the ModelDeployment modules
name those modules one by one (import-linter has no "every other module"). A
module added to render/ without being put in a list would escape them, so this
test fails until it is classified: shared helper, or ModelDeployment module.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import modelops.render

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _contract(contract_id: str) -> dict:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (found,) = [c for c in config["contracts"] if c["id"] == contract_id]
    return found


def _top_level_render_modules() -> set[str]:
    return {
        f"modelops.render.{info.name}" for info in pkgutil.iter_modules(modelops.render.__path__)
    }


def test_every_render_module_is_shared_or_modeldeployment_or_training():
    training = "modelops.render.training"
    training_apart = _contract("render-training-apart")
    shared_helpers = _contract("render-shared-helpers")
    modeldeployment = set(training_apart["forbidden_modules"])
    shared = set(shared_helpers["source_modules"])
    assert not modeldeployment & shared, "a module cannot be both shared and ModelDeployment's"
    # The shared helpers may use neither kind: same ModelDeployment list, plus training.
    assert set(shared_helpers["forbidden_modules"]) == modeldeployment | {training}
    unclassified = _top_level_render_modules() - modeldeployment - shared - {training}
    assert not unclassified, (
        f"{sorted(unclassified)}: add each to render-shared-helpers (used by both kinds) or to"
        " render-training-apart and render-shared-helpers' forbidden lists (ModelDeployment's)"
    )
    stale = (modeldeployment | shared) - _top_level_render_modules()
    assert not stale, f"{sorted(stale)} no longer exist: remove them from the contracts"
