"""Typed configurations: closed sets and ranges checked on construction, checkpoint configs loaded strictly
(retired keys only at their bound value), the preset table, and `python -m train --set` / `--list-presets`."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Literal, get_args, get_origin

import onnx
import pytest
from helpers import REPO
from typer.testing import CliRunner

from models import ModelConfig
from models.typed_config import hints, parse_overrides, with_overrides
from train.__main__ import app
from train.config import DEFAULT_PRESET, PRESET_ROWS, PRESETS, Faces, Protocol, TrainConfig, get_preset
from train.objectives import OBJECTIVES
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess

LITERALS = [(cls, f.name) for cls in (TrainConfig, ModelConfig) for f in fields(cls)
            if get_origin(hints(cls)[f.name]) is Literal]


def _written_before_pooling_left(name: str) -> dict:
    """What `TrainConfig.as_dict()` of a preset wrote while ModelConfig still had `pooling` (always "avg")."""
    data = PRESETS[name].as_dict()
    return {**data, "model": {**data["model"], "pooling": "avg"}}


def _make(cls: type, **values: object) -> object:
    return cls(preset="x", **values) if cls is TrainConfig else cls(**values)


@pytest.mark.parametrize(("cls", "name"), LITERALS, ids=[f"{c.__name__}.{n}" for c, n in LITERALS])
def test_a_value_outside_a_closed_set_names_the_field_and_every_allowed_value(cls: type, name: str) -> None:
    allowed = get_args(hints(cls)[name])
    assert len(allowed) >= 2
    with pytest.raises(FaceverifyError) as error:
        _make(cls, **{name: allowed[0] + "x"})
    message = error.value.message
    assert f"{name} '{allowed[0]}x'" in message and all(repr(a) in message for a in allowed), message
    for value in allowed:  # and every allowed one is accepted
        _make(cls, **{name: value}, **({"blocks": (1, 1, 1, 1)} if value == "plain" else {}))


def test_the_closed_sets_are_the_ones_the_code_handles() -> None:
    assert get_args(Protocol) == ("restricted", "unrestricted") and set(OBJECTIVES) == set(get_args(Protocol))
    assert {n for _, n in LITERALS} == {"protocol", "optimizer", "schedule", "monitor", "tower", "head", "init",
                                        "faces", "precision"}
    assert get_args(Faces) == ("funneled", "aligned")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("lr", 0.0, "lr 0.0 must be > 0"),
    ("lr", float("nan"), "must be a finite number"),
    ("batch_size", 0, "batch_size 0 must be >= 1"),
    ("batch_size", "32", "batch_size '32' must be an integer"),
    ("batch_size", 32.0, "must be an integer"),
    ("val_fraction", 1.0, "in (0, 1)"),
    ("momentum", 1.0, "in [0, 1)"),
    ("augment", 1, "augment 1 must be true or false"),
    ("images_per_identity", 1, "images_per_identity 1 must be >= 2"),
    ("seed", -1, "seed -1 must be >= 0"),
    ("model", {"tower": "koch"}, "model {'tower': 'koch'} must be a ModelConfig"),
])
def test_train_config_ranges_and_types(field: str, value: object, words: str) -> None:
    with pytest.raises(FaceverifyError, match="invalid configuration") as error:
        TrainConfig(preset="x", **{field: value})
    assert words in error.value.message


@pytest.mark.parametrize(("changes", "words"), [
    ({"dropout": 1.0}, "model.dropout 1.0 must be in [0, 1)"),
    ({"embedding": 0}, "model.embedding 0 must be >= 1"),
    ({"channels": ()}, "model.channels () must be one or more widths >= 1"),
    ({"channels": (32, "64")}, "item '64' must be an integer"),
    ({"channels": (32, 64)}, "channels, kernels and pools need one entry per layer"),
    ({"tower": "plain"}, "blocks needs one count >= 1 per stage"),
])
def test_model_config_ranges_and_shapes(changes: dict, words: str) -> None:
    with pytest.raises(FaceverifyError) as error:
        ModelConfig(**changes)
    assert words in error.value.message


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_a_checkpoint_dictionary(name: str) -> None:
    cfg = PRESETS[name]
    assert TrainConfig.from_dict(cfg.as_dict()) == cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_checkpoint_written_before_the_retired_field_still_loads(name: str) -> None:
    assert TrainConfig.from_dict(_written_before_pooling_left(name)) == PRESETS[name]


def test_the_bundled_models_training_config_loads_as_the_default_preset() -> None:
    bundled = onnx.load(str(REPO / "verify_cli" / "assets" / "faceverify.onnx"))
    props = {p.key: p.value for p in bundled.metadata_props}
    written = json.loads(props[modelmeta.K_TRAINING])
    assert written["precision"] == "bf16"  # a run records the precision its "auto" resolved to: bf16 on its CPU
    assert replace(TrainConfig.from_dict(written), precision="auto") == get_preset("default")


@pytest.mark.parametrize(("value", "words"), [
    ("flatten", ("model.pooling='flatten' can no longer be loaded (only the retired residual tower read it; only "
                 "'avg' is accepted)")),
    ("max", "only 'avg' is accepted"),
])
def test_a_retired_field_loads_only_at_the_value_it_is_bound_to(value: object, words: str) -> None:
    old = _written_before_pooling_left("fv-plain")
    old["model"]["pooling"] = value
    with pytest.raises(FaceverifyError) as error:
        TrainConfig.from_dict(old)
    assert words in error.value.message


@pytest.mark.parametrize(("where", "words"), [
    ("top", "unknown key 'schedul'"),
    ("model", "unknown key 'model.towr'"),
    ("preprocess", "unknown key 'preprocess.mode'"),
])
def test_an_unknown_checkpoint_key_is_one_clear_error(where: str, words: str) -> None:
    data = get_preset("exp9").as_dict()
    if where == "top":
        data["schedul"] = "cosine"  # a renamed field must not fall back to its default silently
    elif where == "model":
        data["model"]["towr"] = "plain"
    else:
        data["preprocess"]["mode"] = "L"
    with pytest.raises(FaceverifyError) as error:
        TrainConfig.from_dict(data)
    assert words in error.value.message and "\n" not in error.value.message


def test_a_checkpoint_config_of_the_wrong_shape_is_one_clear_error() -> None:
    with pytest.raises(FaceverifyError, match=r"checkpoint configuration unreadable \(model is str"):
        TrainConfig.from_dict({**get_preset("exp9").as_dict(), "model": "koch"})
    with pytest.raises(FaceverifyError, match="lacks preset"):
        TrainConfig.from_dict({k: v for k, v in get_preset("exp9").as_dict().items() if k != "preset"})


def test_each_preset_is_its_parent_with_its_row_changes() -> None:
    names = [row.name for row in PRESET_ROWS]
    assert names == list(PRESETS) and len(set(names)) == len(names) and DEFAULT_PRESET in names
    for index, row in enumerate(PRESET_ROWS):
        parent = PRESETS[row.parent] if row.parent else TrainConfig(preset=row.name)
        assert row.parent is None or row.parent in names[:index]
        cfg = PRESETS[row.name]
        assert (cfg.preset, cfg.description) == (row.name, row.description) and row.description
        for key, value in row.changes.items():  # every change changes something
            group, _, name = key.rpartition(".")
            assert getattr(getattr(cfg, group) if group else cfg, name) == value
            assert getattr(getattr(parent, group) if group else parent, name) != value, (row.name, key)
        unchanged = {k: v for k, v in parent.as_dict().items() if k not in ("preset", "description")}
        for key in row.changes:
            group, _, name = key.rpartition(".")
            (unchanged[group] if group else unchanged).pop(name)
        got = cfg.as_dict()
        for key, value in unchanged.items():
            if isinstance(value, dict):
                assert {k: got[key][k] for k in value} == value, (row.name, key)
            else:
                assert got[key] == value, (row.name, key)


def test_report_presets_keep_the_reports_input() -> None:
    assert all(PRESETS[f"exp{n}"].preprocess == Preprocess() for n in range(1, 11))  # 105x105 grayscale
    assert get_preset("default") is PRESETS[DEFAULT_PRESET]
    with pytest.raises(FaceverifyError, match="unknown preset 'exp11'; choose one of exp1, exp2"):
        get_preset("exp11")


def test_overrides_are_parsed_by_field_type_and_checked() -> None:
    items = ["lr=3e-3", "model.dropout=0.3", "augment=false", "model.channels=16,32,64,128", "preprocess.size=64",
             "schedule=cosine", "seed=7", "model.pools=(true, true, false, false)"]
    changes = parse_overrides(TrainConfig, items)
    assert changes == {"lr": 0.003, "model.dropout": 0.3, "augment": False, "model.channels": (16, 32, 64, 128),
                       "preprocess.size": 64, "schedule": "cosine", "seed": 7, "model.pools": (True, True, False, False)}
    base = get_preset("exp9")
    cfg = with_overrides(base, changes)
    assert cfg.model == replace(base.model, dropout=0.3, channels=(16, 32, 64, 128), pools=(True, True, False, False))
    assert cfg.preprocess == replace(base.preprocess, size=64) and (cfg.lr, cfg.seed, cfg.augment) == (0.003, 7, False)
    assert parse_overrides(TrainConfig, ["lr=1", "lr=2"]) == {"lr": 2.0}


@pytest.mark.parametrize(("item", "words"), [
    ("lr", "expected KEY=VALUE"),
    ("lr=fast", "--set lr=fast: the value must be a number"),
    ("batch_size=3.5", "must be an integer"),
    ("augment=maybe", "must be true or false"),
    ("model.towr=plain", "unknown configuration key 'model.towr' (model has no 'towr')"),
    ("model.pooling=avg", "unknown configuration key 'model.pooling' (model has no 'pooling')"),
    ("modle.dropout=0.1", "unknown configuration key 'modle.dropout'"),
    ("lr.x=1", "unknown configuration key 'lr.x' (lr has no 'x')"),
    ("model=koch", "'model' is a group of settings"),
])
def test_a_bad_override_is_one_clear_error(item: str, words: str) -> None:
    with pytest.raises(FaceverifyError) as error:
        parse_overrides(TrainConfig, [item])
    assert words in error.value.message


@pytest.mark.parametrize(("args", "words"), [
    (["--set", "schedule=cosin"], ("error: invalid configuration: schedule 'cosin' is not one of 'exponential', "
                                  "'cosine'")),
    (["--set", "monitor=val_acc"], "monitor 'val_acc' is not one of 'val_loss', 'val_auc'"),
    (["--set", "protocol=unrestriced"], "protocol 'unrestriced' is not one of 'restricted', 'unrestricted'"),
    (["--preset", "exp9", "--set", "model.dropout=1"], "model.dropout 1.0 must be in [0, 1)"),
    (["--preset", "exp9", "--set", "preprocess.size=16"], "preprocess.size 16 is too small for model.kernels (10, 7, 4, 4)"),
])
def test_python_m_train_refuses_a_bad_setting_before_any_data_in_one_line(args: list[str], words: str,
                                                                          tmp_path: object) -> None:
    result = CliRunner().invoke(app, [*args, "--data-root", str(tmp_path), "--dry-run", "--run-dir",
                                      str(tmp_path / "run")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


def test_list_presets_shows_every_preset_its_parent_and_its_changes() -> None:
    result = CliRunner().invoke(app, ["--list-presets"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in PRESET_ROWS:
        first = next(line for line in lines if line.startswith(f"│ {row.name} "))
        assert f"│ {row.parent or 'defaults'} " in first, first
    assert f"{DEFAULT_PRESET} (default)" in result.stdout
    assert "model.patches=1.0,0.8" in result.stdout and "model.pools=true,true,false" in result.stdout
