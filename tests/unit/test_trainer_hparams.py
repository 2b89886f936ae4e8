"""Hyperparameter parsing and typed access (pure)."""

from __future__ import annotations

import pytest

from modelops.trainer.hparams import HParamError, HParams, parse_hparams
from modelops.trainer.settings import LoopSettings


def test_parse_keeps_everything_after_the_first_equals_sign():
    assert parse_hparams(["epochs=5", "lr=1e-3", "expr=a=b", "empty="]) == {
        "epochs": "5",
        "lr": "1e-3",
        "expr": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["epochs"], "not KEY=VALUE"),
        (["=5"], "not an identifier"),
        (["1st=5"], "not an identifier"),
        (["a b=1"], "not an identifier"),
        (["lr=1", "lr=2"], "given twice"),
    ],
)
def test_parse_refuses_malformed_items(items, message):
    with pytest.raises(HParamError, match=message):
        parse_hparams(items)


def test_typed_getters_convert_or_default():
    hp = HParams({"epochs": " 7 ", "lr": "0.5", "name": "mlp", "shuffle": "No"})
    assert hp.get_int("epochs", 1) == 7
    assert hp.get_float("lr", 1.0) == 0.5
    assert hp.get_str("name", "x") == "mlp"
    assert hp.get_bool("shuffle", True) is False
    assert hp.get_int("missing", 3) == 3
    assert hp.get_bool("also_missing", True) is True


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda hp: hp.get_int("lr", 1), "not an integer"),
        (lambda hp: hp.get_float("name", 1.0), "not a number"),
        (lambda hp: hp.get_bool("name", True), "not a boolean"),
    ],
)
def test_typed_getters_name_the_bad_value(call, message):
    hp = HParams({"lr": "0.5", "name": "mlp"})
    with pytest.raises(HParamError, match=message):
        call(hp)


def test_unread_lists_keys_nobody_asked_for():
    hp = HParams({"epochs": "2", "learning_rate": "0.1", "seed": "1"})
    hp.get_int("epochs", 1)
    hp.get_float("lr", 0.1)  # the module reads "lr": "learning_rate" is a typo
    assert hp["seed"] == "1"
    assert hp.unread() == ["learning_rate"]
    assert hp.as_dict() == {"epochs": "2", "learning_rate": "0.1", "seed": "1"}
    assert hp.unread() == ["learning_rate"]  # as_dict does not count as reading


def test_runner_settings_defaults_and_validation():
    assert LoopSettings.from_hparams(HParams()) == LoopSettings(5, 64, 0, 0.1)
    hp = HParams({"epochs": "3", "batch_size": "128", "seed": "9", "val_fraction": "0"})
    assert LoopSettings.from_hparams(hp) == LoopSettings(3, 128, 9, 0.0)
    for bad in ({"epochs": "0"}, {"batch_size": "-1"}, {"val_fraction": "1"}, {"seed": "x"}):
        with pytest.raises(HParamError):
            LoopSettings.from_hparams(HParams(bad))
