"""Finding and checking a training module (no torch needed)."""

from __future__ import annotations

import pytest

from modelops.trainer.contract import ContractError, check_spec, load_training_module


@pytest.fixture
def modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "good_trainer.py").write_text(
        "def build(hparams):\n    return None\n\ndef load_dataset(uri, hparams):\n    return None\n"
    )
    (tmp_path / "half_trainer.py").write_text("def build(hparams):\n    return None\n")
    (tmp_path / "broken_trainer.py").write_text("import not_installed_anywhere\n")
    return tmp_path


def test_a_module_with_both_functions_loads(modules):
    module = load_training_module("good_trainer")
    assert module.name == "good_trainer" and callable(module.build)


def test_missing_functions_and_modules_are_contract_errors(modules):
    with pytest.raises(ContractError, match="must define load_dataset"):
        load_training_module("half_trainer")
    with pytest.raises(ContractError, match="is not importable"):
        load_training_module("no_such_trainer")
    with pytest.raises(ContractError, match="is not importable"):
        load_training_module("good_trainer.sub")


def test_a_missing_dependency_of_the_module_shows_the_real_error(modules):
    with pytest.raises(ModuleNotFoundError, match="not_installed_anywhere"):
        load_training_module("broken_trainer")


def test_build_must_return_a_training_spec():
    with pytest.raises(ContractError, match="returned dict, expected a TrainingSpec"):
        check_spec({}, "m")
