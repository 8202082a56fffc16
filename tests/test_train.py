"""The training stage end to end on real LFW images (smoke runs of exp9 and of the default preset, run folder,
splits, resume after a stop, DevTest only on request) and its losses against independent computations."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO

from models import SiameseNet, build_model
from models.heads import CosineHead
from train import calibration, checkpoint, loop, report, summary
from train.__main__ import run
from train.config import DEFAULT_PRESET, get_preset
from train.data import (
    augment,
    identity_batches,
    identity_steps,
    make_data,
    neighbour_order,
    photometric,
    protocol_splits,
    random_erase,
    shift_and_flip,
    split_pairs,
    split_people,
)
from train.lookalike import lookalike_set
from train.losses import CosFace, in_batch_pair_loss
from train.objectives import IdentityObjective
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot
from verify_cli.preprocess import Preprocess


@pytest.mark.slow
def test_smoke_run_leaves_a_complete_run_folder(tiny_run: Path) -> None:
    for name in ("best.pt", "last.pt", "history.json", "summary.json", "curves.png", "roc.png"):
        assert (tiny_run / name).stat().st_size > 0, name
    best = torch.load(tiny_run / "best.pt", weights_only=True)
    assert best["format"] == checkpoint.FORMAT and 0.0 <= best["threshold"] <= 1.0
    history = json.loads((tiny_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) and 0 <= row["val_accuracy"] <= 1 for row in history)
    for row in history:  # look-alike strangers every epoch, so that a run can be chosen on them
        assert math.isnan(row["val_lookalike_auc"]) or 0 <= row["val_lookalike_auc"] <= 1
        assert row["val_auc_mean"] == pytest.approx((row["val_auc"] + row["val_lookalike_auc"]) / 2, nan_ok=True)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["threshold"] == best["threshold"] and summary["validation"]["pairs"] == 5  # a tenth of 48
    assert "test" not in summary  # DevTest only with --report-test
    assert summary["threshold_rule"] == calibration.ARGMAX_RULE  # Koch's L1 head is not recalibrated on validation
    assert not list(tiny_run.glob("*.tmp"))


def test_restricted_split_is_the_reports(data_root: Path) -> None:
    pairs = LFWRoot.open(data_root).pairs("train")
    train, val = split_pairs(pairs, 0.1, seed=0)
    assert (len(train), len(val)) == (1980, 220)
    assert not {(p.left, p.right) for p in train} & {(p.left, p.right) for p in val}
    assert split_pairs(pairs, 0.1, seed=0) == (train, val)
    assert split_pairs(pairs, 0.1, seed=1) != (train, val)


def test_unrestricted_split_holds_out_people(data_root: Path) -> None:
    people = list(LFWRoot.open(data_root).people("train"))
    train, val = split_people(people, 0.1, seed=0)
    assert len(val) == round(0.1 * len(people)) and not train & val and len(train | val) == len(people)


def test_augment_keeps_shape_and_is_seeded() -> None:
    x = torch.rand(4, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(1)))


def test_shift_and_flip_moves_whole_pixels_repeats_edges_and_mirrors() -> None:
    x = torch.rand(64, 2, 6, 7)
    out = shift_and_flip(x, torch.Generator().manual_seed(2), 2)
    assert torch.equal(out, shift_and_flip(x, torch.Generator().manual_seed(2), 2))
    flips = 0
    for img, moved in zip(x.numpy(), out.numpy(), strict=True):
        padded = np.pad(img, ((0, 0), (2, 2), (2, 2)), mode="edge")
        windows = {(dy, dx): padded[:, 2 - dy : 8 - dy, 2 - dx : 9 - dx] for dy in range(-2, 3) for dx in range(-2, 3)}
        found = [(dy, dx, flip) for (dy, dx), window in windows.items() for flip in (False, True)
                 if np.array_equal(moved, window[:, :, ::-1] if flip else window)]
        assert found, "every output is its input moved by at most 2 pixels, perhaps mirrored"
        flips += found[0][2]
    assert 16 < flips < 48


def test_photometric_jitter_is_seeded_and_greys_some_images() -> None:
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    a = photometric(x, torch.Generator().manual_seed(1), 0.3)
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, photometric(x, torch.Generator().manual_seed(1), 0.3))
    grey = [bool(torch.allclose(img[0], img[1]) and torch.allclose(img[1], img[2])) for img in a]
    assert 0 < sum(grey) < 64


def _history(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads((run_dir / "history.json").read_text())]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["exp9", "fv-plain"])
def test_resume_repeats_an_unbroken_run(data_root: Path, tmp_path: Path, preset: str) -> None:
    run(preset, data_root, tmp_path / "whole", resume=False, epochs=2, seed=3, dry_run=True, threads=0)
    run(preset, data_root, tmp_path / "broken", resume=False, epochs=1, seed=3, dry_run=True, threads=0)
    assert len(_history(tmp_path / "broken")) == 1
    run(preset, data_root, tmp_path / "broken", resume=True, epochs=2, seed=3, dry_run=True, threads=0)
    assert _history(tmp_path / "broken") == _history(tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    broken = json.loads((tmp_path / "broken" / "summary.json").read_text())
    assert whole["validation"] == broken["validation"] and whole["threshold"] == broken["threshold"]
    weights = [checkpoint.load(tmp_path / name / "last.pt")["model"] for name in ("whole", "broken")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "bit-identical weights"


@pytest.mark.parametrize("branches", [1, 2])
def test_a_last_checkpoint_written_before_the_objective_key_still_restores_its_objective(branches: int) -> None:
    written = torch.nn.ModuleList(CosFace(4, 3, 0.35, 30.0) for _ in range(branches))
    old = written.state_dict()  # as a run wrote it under "identity_loss": one tower's CosFace weight as "weight"
    old = {"weight": old["0.weight"]} if branches == 1 else old
    restored = torch.nn.ModuleList(CosFace(4, 3, 0.35, 30.0) for _ in range(branches))
    restored.load_state_dict(loop.objective_state({"identity_loss": old}))
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(written, restored, strict=True))
    assert loop.objective_state({"identity_loss": {}}) == {}  # the pairs objective keeps nothing
    assert loop.objective_state({"objective": old, "identity_loss": {}}) is old


@pytest.mark.slow
def test_with_ema_the_moving_average_is_validated_and_kept(data_root: Path, tmp_path: Path) -> None:
    run("fv-plain", data_root, tmp_path, resume=False, epochs=1, seed=0, dry_run=True, threads=0,
        overrides=["ema=0.5"])
    last, best = checkpoint.load(tmp_path / "last.pt"), checkpoint.load(tmp_path / "best.pt")
    average = {k.removeprefix("module."): v for k, v in last["ema"].items() if k != "n_averaged"}
    assert int(last["ema"]["n_averaged"]) >= 1  # one update per optimisation step
    conv = "tower.features.0.weight"
    assert torch.equal(best["model"][conv], average[conv]) and not torch.equal(best["model"][conv], last["model"][conv])
    # finalize refits the head on validation; every other tensor of best.pt is the average, not the raw weights
    assert all(torch.equal(best["model"][k], average[k]) for k in best["model"] if not k.startswith("head."))


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_bad_input_gives_one_line_and_exit_2(data_root: Path, tmp_path: Path) -> None:
    cases = [
        (["--preset", "nope", "--data-root", str(data_root)], "unknown preset"),
        (["--preset", "exp9", "--data-root", str(tmp_path)], "LFW images not found"),
    ]
    run_dir = tmp_path / "corrupt"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"\x00garbage" * 100)
    cases.append((["--preset", "exp9", "--data-root", str(data_root), "--run-dir", str(run_dir), "--resume",
                   "--dry-run"], "not a readable checkpoint"))
    for args, message in cases:
        result = _train_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert message in lines[-1] and "Traceback" not in result.stderr, (args, result.stderr)


@pytest.mark.slow
def test_report_test_scores_devtest_once_and_changes_nothing_else(data_root: Path, tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    run("exp9", data_root, tmp_path / "run", resume=False, epochs=2, seed=None, dry_run=True, threads=0,
        report_test=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    plain = json.loads((tiny_run / "summary.json").read_text())
    assert summary["test"]["pairs"] == 24 and 0 <= summary["test"]["accuracy"] <= 1  # 12 of each class
    assert summary["threshold"] == plain["threshold"] and summary["validation"] == plain["validation"]
    row = report.results_row(summary)
    assert row["test_accuracy"] == f"{100 * summary['test']['accuracy']:.1f}"
    assert [report.results_row(plain)[k] for k in ("test_loss", "test_accuracy", "test_auc")] == ["", "", ""]


@pytest.fixture(scope="module")
def default_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`python -m train --preset default --dry-run` on real images, watching its batches and its calibration."""
    seen: dict = {"batches": [], "calibrations": []}
    real_loss, real_calibrate = IdentityObjective.loss, summary.calibrate_head

    def loss(self: IdentityObjective, model, emb, rows):
        seen["batches"].append(self.identities.labels[rows])
        value = real_loss(self, model, emb, rows)
        seen.setdefault("losses", []).append(value[0].item())
        return value

    def calibrate(model, *args):
        before = (float(model.head.scale), float(model.head.bias))
        done = real_calibrate(model, *args)
        seen["calibrations"].append((done, before, (float(model.head.scale), float(model.head.bias))))
        return done

    run_dir = tmp_path_factory.mktemp("default") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IdentityObjective, "loss", loss)
        patch.setattr(summary, "calibrate_head", calibrate)
        run("default", data_root, run_dir, resume=False, epochs=2, seed=None, dry_run=True, threads=0)
    return {**seen, "run_dir": run_dir}


@pytest.mark.slow
def test_default_preset_trains_on_identities_with_cosface_and_pair_loss(default_run: dict, data_root: Path) -> None:
    cfg = get_preset("default")
    people = protocol_splits(cfg, LFWRoot.open(data_root), smoke=True).people
    last = torch.load(default_run["run_dir"] / "last.pt", weights_only=True)
    assert last["config"]["preset"] == DEFAULT_PRESET and last["config"]["protocol"] == "unrestricted"
    branches = max(1, len(cfg.model.patches))  # one CosFace per branch of a patch tower, on its part of the embedding
    state = last["objective"]
    for cosface in [state[f"{k}.weight"] for k in range(branches)]:
        # one CosFace class per training person, trained with the network
        assert cosface.shape == (len(people), cfg.model.embedding // branches) and torch.isfinite(cosface).all()
    assert default_run["batches"] and all(np.isfinite(default_run["losses"]))
    for labels in default_run["batches"]:
        _, counts = np.unique(labels, return_counts=True)
        assert counts.size <= cfg.identities_per_batch + cfg.singletons_per_batch  # one-image people: extra classes
        assert counts.max() <= cfg.images_per_identity
        assert (counts >= 2).any()  # same-person pairs for the in-batch pair loss
    history = json.loads((default_run["run_dir"] / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(np.isfinite([r["train_loss"], r["val_loss"], r["val_auc"]]).all() for r in history)


@pytest.mark.slow
def test_default_preset_calibrates_its_head_and_its_checkpoint_reloads(default_run: dict, data_root: Path) -> None:
    [(done, before, after)] = default_run["calibrations"]
    assert done and before != after  # the cosine head's scale and bias were refitted on validation pairs
    saved = checkpoint.load(default_run["run_dir"] / "best.pt")
    cfg, model = loop.load_model(saved)
    assert (float(model.head.scale), float(model.head.bias)) == after
    data = make_data(cfg, LFWRoot.open(data_root), smoke=True)
    probs, _ = loop.pair_probabilities(model, data.bank, data.val, cfg.preprocess, torch.device("cpu"))
    accuracy = float(np.mean((probs >= saved["threshold"]) == (data.val.labels > 0.5)))
    assert accuracy == saved["summary"]["validation"]["accuracy"]
    # beside the random pairs, look-alike strangers of the same validation people, at the same threshold
    alike = saved["summary"]["lookalike"]
    same = int((data.val.labels > 0.5).sum())
    assert alike["same_pairs"] == same and 0 < alike["different_pairs"] <= same
    # the threshold weighs same-person pairs 1/2, random strangers 1/4 and look-alike strangers 1/4
    assert saved["summary"]["threshold_rule"] == calibration.MIXED_RULE
    alike_set = lookalike_set(data.bank, data.val)
    alike_probs, _ = loop.pair_probabilities(model, data.bank, alike_set, cfg.preprocess, torch.device("cpu"))
    strangers = np.r_[probs[data.val.labels < 0.5], alike_probs[alike_set.labels < 0.5]]
    n_random = int((data.val.labels < 0.5).sum())
    def weighted(t: float) -> float:
        return (0.5 * np.mean(probs[data.val.labels > 0.5] >= t) + 0.25 * np.mean(strangers[:n_random] < t)
                + 0.25 * np.mean(strangers[n_random:] < t))
    grid = np.unique(np.r_[probs, alike_probs])
    assert weighted(saved["threshold"]) == pytest.approx(max(weighted(t) for t in grid))
    assert alike["tar"] == pytest.approx(float(np.mean(probs[data.val.labels > 0.5] >= saved["threshold"])))


def test_identity_batches_hold_p_identities_of_k_images() -> None:
    labels = np.array([0] * 5 + [1] * 3 + [2] + [3] * 2 + [4] + [5] * 4)  # people 2 and 4 have one image
    batches = list(identity_batches(labels, 2, 3, torch.Generator().manual_seed(0), singletons=1))
    assert len(batches) == 2  # four people with two or more images, two per batch
    seen = []
    for rows in batches:
        assert len(set(rows.tolist())) == rows.size
        multi, single = rows[:-1], rows[-1:]
        people, counts = np.unique(labels[multi], return_counts=True)
        assert people.size == 2 and all(c == min(3, int((labels == p).sum())) for p, c in zip(people, counts))
        assert labels[single][0] in (2, 4)
        seen += people.tolist()
    assert sorted(seen) == [0, 1, 3, 5]
    assert identity_steps(labels, 2) == len(batches) and identity_steps(labels, 3) == 2


def test_neighbour_order_groups_each_random_seed_with_its_nearest_free_rows() -> None:
    angles = np.array([0.0, 0.05, 1.5, 1.55, 3.0, 3.05, 4.5, 4.55])  # four tight pairs of directions
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.arange(1, 9)[:, None]  # lengths do not count
    order = neighbour_order(vectors, 2, torch.Generator().manual_seed(3))
    assert sorted(order.tolist()) == list(range(8))
    assert {frozenset(order[i : i + 2].tolist()) for i in range(0, 8, 2)} == {frozenset((i, i + 1)) for i in range(0, 8, 2)}
    again = neighbour_order(vectors, 2, torch.Generator().manual_seed(3))
    assert np.array_equal(order, again)  # seeded


def test_neighbour_batches_put_look_alike_people_together_and_each_person_in_once() -> None:
    labels = np.repeat(np.arange(8), 3)
    partner = np.array([5, 6, 7, 4, 3, 0, 1, 2])  # four tight pairs of people: 0~5, 1~6, 2~7, 3~4
    vectors = np.eye(8)[np.minimum(np.arange(8), partner)] + 0.01 * np.eye(8)
    batches = list(identity_batches(labels, 4, 2, torch.Generator().manual_seed(0), neighbours=2,
                                    class_vectors=vectors))
    assert len(batches) == 2 and all(rows.size == 8 for rows in batches)  # four people of two images each
    people = np.concatenate([labels[rows[::2]] for rows in batches])  # each person's two images are adjacent
    assert sorted(people.tolist()) == list(range(8))
    assert all(partner[a] == b for a, b in people.reshape(4, 2))


def test_neighbours_must_divide_the_people_per_batch() -> None:
    with pytest.raises(FaceverifyError, match="must divide identities_per_batch"):
        get_preset("fv-plain").__class__(preset="x", protocol="unrestricted", identities_per_batch=6, neighbours=4)


def test_view2_folds_train_on_the_other_folds_people_only(data_root: Path) -> None:
    from train.config import VIEW2_FOLDS

    lfw = LFWRoot.open(data_root)
    pairs = lfw.pairs("10fold")
    for fold in (1, VIEW2_FOLDS):
        splits = protocol_splits(replace(get_preset("default"), view2_fold=fold), lfw)
        assert splits.test == [p for p in pairs if p.fold == fold - 1] and len(splits.test) == 600
        tested = {n for p in splits.test for n in p.people}
        validating = {n for p in splits.val for n in p.people}
        others = {n for p in pairs if p.fold != fold - 1 for n in p.people} - tested
        assert set(splits.people) | validating == others  # every other fold's person trains or validates
        assert not (set(splits.people) & tested) and not (validating & tested) and not (set(splits.people) & validating)
        counts = lfw.people("all")
        assert all(len(images) == counts[name] for name, images in splits.people.items())  # all their images


def test_view2_table_gives_the_mean_and_its_standard_error(tmp_path: Path) -> None:
    from train import view2

    for fold, accuracy in ((1, 0.90), (2, 0.80), (4, 0.85)):
        summary = {"threshold": 0.6, "validation": {"accuracy": 0.9}, "test": {"pairs": 600, "accuracy": accuracy,
                                                                              "roc_auc": accuracy}}
        (view2.fold_dir(tmp_path, fold)).mkdir()
        (view2.fold_dir(tmp_path, fold) / "summary.json").write_text(json.dumps(summary))
    rows = view2.fold_rows(tmp_path)
    assert [r["fold"] for r in rows] == [1, 2, 4]
    mean, se = view2.mean_se([r["accuracy"] for r in rows])
    assert mean == pytest.approx(0.85) and se == pytest.approx(0.05 / math.sqrt(3))  # sd 0.05 over sqrt(3)
    assert view2.folds_of("all") == list(range(1, 11)) and view2.folds_of("7") == [7]
    with pytest.raises(FaceverifyError, match="--fold must be all or a fold 1..10"):
        view2.folds_of("11")


@pytest.mark.slow
def test_a_view2_fold_runs_scores_its_own_pairs_and_writes_them(data_root: Path, tmp_path: Path) -> None:
    from train import view2

    view2.run_fold(3, data_root, tmp_path, threads=1, dry_run=True, overrides=[])
    summary = json.loads((view2.fold_dir(tmp_path, 3) / "summary.json").read_text())
    written = LFWRoot.open(data_root).pairs(str(view2.fold_dir(tmp_path, 3) / "pairs.txt"))
    fold3 = [p for p in LFWRoot.open(data_root).pairs("10fold") if p.fold == 2]
    assert {(p.left, p.right) for p in written} <= {(p.left, p.right) for p in fold3}
    assert summary["test"]["pairs"] == len(written) and view2.fold_rows(tmp_path)[0]["fold"] == 3


def test_one_cycle_steps_after_every_batch_and_ends_near_zero(data_root: Path) -> None:
    cfg = get_preset("fv-plain")
    data = make_data(cfg, LFWRoot.open(data_root), smoke=True)
    st = loop.build_state(cfg, data, torch.device("cpu"))
    total = cfg.max_epochs * st.objective.steps()
    assert st.per_step and st.scheduler.total_steps == total
    lrs = []
    for _ in range(total):
        lrs.append(st.optimizer.param_groups[0]["lr"])
        st.optimizer.step()
        st.scheduler.step()
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(cfg.lr) and peak == pytest.approx(0.3 * total, abs=1)
    assert lrs[0] == pytest.approx(cfg.lr / 25) and lrs[-1] < cfg.lr / 1e5
    assert st.optimizer.param_groups[0]["nesterov"] and st.optimizer.param_groups[0]["momentum"] == 0.9


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_in_batch_pair_loss_is_balanced_bce_over_every_pair() -> None:
    gen = torch.Generator().manual_seed(0)
    emb, labels = torch.randn(5, 4, generator=gen), torch.tensor([0, 0, 1, 1, 2])
    model = SiameseNet(torch.nn.Identity(), CosineHead(4))  # logit = 10 cos - 5
    loss, acc = in_batch_pair_loss(model, emb, labels)
    e = emb.double().numpy()
    terms = []
    for i in range(5):
        for j in range(i + 1, 5):
            same = bool(labels[i] == labels[j])
            p = _sigmoid(10 * e[i] @ e[j] / np.linalg.norm(e[i]) / np.linalg.norm(e[j]) - 5)
            terms.append((same, -math.log(p if same else 1 - p), (p > 0.5) == same))
    positives = sum(t[0] for t in terms)  # 2 of the 10 pairs
    weight = {True: 1 / (2 * positives), False: 1 / (2 * (len(terms) - positives))}
    assert loss.item() == pytest.approx(sum(weight[s] * bce for s, bce, _ in terms), rel=1e-5)
    assert acc == pytest.approx(sum(weight[s] * right for s, _, right in terms), rel=1e-6)


def test_the_pair_loss_gradient_repeats_bit_for_bit_on_two_threads() -> None:
    # without fixed_order_kernels (which fit calls; it stays on in this process) the backward of the loss's
    # indexing adds with atomics from both threads, and nearly every repeat gives a different gradient
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # even on one core: two threads still race
    try:
        loop.fixed_order_kernels(torch.device("cpu"))
        emb, labels = torch.randn(100, 64, generator=torch.Generator().manual_seed(0)), torch.arange(100) // 4
        model = SiameseNet(torch.nn.Identity(), CosineHead(64))
        grads = set()
        for _ in range(20):
            x = emb.clone().requires_grad_(True)
            in_batch_pair_loss(model, x, labels)[0].backward()
            grads.add(x.grad.numpy().tobytes())
        assert len(grads) == 1
    finally:
        torch.set_num_threads(threads)


def test_cosface_is_cross_entropy_of_scaled_cosines_with_a_margin_on_the_true_class() -> None:
    gen = torch.Generator().manual_seed(1)
    cosface = CosFace(4, 3, margin=0.35, scale=30.0)
    emb, labels = torch.randn(2, 4, generator=gen), torch.tensor([2, 0])
    e, w = emb.double().numpy(), cosface.weight.detach().double().numpy()
    expected = 0.0
    for row, label in zip(e, labels.tolist()):
        cos = (w @ row) / np.linalg.norm(w, axis=1) / np.linalg.norm(row)
        cos[label] -= 0.35
        expected += -(30 * cos[label] - math.log(np.exp(30 * cos).sum())) / 2
    assert cosface(emb, labels).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_default_preset_exports_with_parity(default_run: dict, data_root: Path, tmp_path: Path) -> None:
    from export import ExportConfig, export_model

    result = export_model(default_run["run_dir"] / "best.pt", tmp_path / "m.onnx", data_root, ExportConfig(dry_run=True))
    assert result.parity.passed and result.parity.decisions_differ == 0
    spec = get_preset("default").preprocess
    assert json.loads(result.metadata[modelmeta.K_INPUT]) == {"channels": spec.channels, "height": spec.size,
                                                              "width": spec.size}
    assert modelmeta.K_DEVTEST not in result.metadata


@pytest.mark.slow
def test_threshold_rules_score_both_rules_on_held_out_halves(default_run: dict, tiny_run: Path,
                                                             data_root: Path) -> None:
    from train.validate import threshold_rules

    report = threshold_rules(default_run["run_dir"] / "best.pt", data_root, halvings=3)
    assert report["halvings"] == 3 and report["calibrated"]["rule"] == calibration.CALIBRATED_RULE
    accuracies = [report[rule]["held_out_accuracy"] for rule in ("calibrated", "argmax")]
    assert all(0.3 < a < 1 for a in accuracies)  # scored on pairs of people the thresholds never saw
    assert report["calibrated_minus_argmax"]["mean"] == pytest.approx(accuracies[0] - accuracies[1])
    mixed = report["mixed"]  # the look-alike rule, scored on the same held-out halves
    assert mixed["rule"] == calibration.MIXED_RULE and 0.3 < mixed["held_out_accuracy"] < 1
    assert all(0 <= report[r]["held_out_mixed_accuracy"] <= 1 for r in ("calibrated", "argmax", "mixed"))
    with pytest.raises(FaceverifyError, match="cosine head"):
        threshold_rules(tiny_run / "best.pt", data_root, halvings=1)  # Koch's L1 head has no calibration to compare


def test_validation_pairs_written_as_view1_parse_back(tmp_path: Path) -> None:
    from train.validate import view1_text
    from verify_cli.lfw import Pair, parse_pairs

    pairs = [Pair("A_B/A_B_0001.jpg", "A_B/A_B_0003.jpg", True), Pair("C/C_0002.jpg", "C/C_0010.jpg", True),
             Pair("A_B/A_B_0002.jpg", "D/D_0001.jpg", False)]
    (tmp_path / "val.txt").write_text(view1_text(pairs))
    assert [(p.left, p.right, p.same) for p in parse_pairs(tmp_path / "val.txt")] == [
        (p.left, p.right, p.same) for p in (pairs[0], pairs[2])]  # one pair of each class: the smaller class's count


def test_experiments_table_reads_runs_and_keeps_the_reports_figures(tmp_path: Path) -> None:
    from train.experiments import table

    history = [{"epoch": e, "val_loss": loss, "val_accuracy": 0.6 + e / 100, "val_auc": 0.7, "seconds": 60.0}
               for e, loss in enumerate([0.9, 0.7, 0.8] + [0.75] * 20, start=1)]
    (tmp_path / "exp9").mkdir()
    (tmp_path / "exp9" / "history.json").write_text(json.dumps(history))
    (tmp_path / "exp9" / "summary.json").write_text(json.dumps({"epochs_run": 23, "test": {"accuracy": 0.655, "roc_auc": 0.71}}))
    (tmp_path / "exp1").mkdir()
    (tmp_path / "exp1" / "history.json").write_text(json.dumps(history[:5]))  # still running: no summary for 5
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table(tmp_path).splitlines()[2:]}
    assert rows["exp9"][1:9] == ["23 (of 200)", "patience", "2", "23", "0.700", "62.0", "65.5", "0.710"]
    assert rows["exp1"][1:3] == ["5 (of 200)", "running"] and rows["exp1"][-4:-1] == ["0.539", "72.3", "70.4"]
    assert rows["exp3"][1] == "not run (of 200)" and len(rows) == 10


def test_each_patch_trains_on_its_own_part_of_the_embedding_with_its_own_cosface() -> None:
    from train.data import Identities

    cfg = get_preset("fv-patches")
    labels = np.repeat(np.arange(6), 4)
    objective = IdentityObjective(cfg, Identities(np.arange(24), labels), torch.device("cpu"))
    assert len(objective.cosface) == 2 and objective.cosface[0].weight.shape == (6, 64)
    model = build_model(cfg.model, cfg.preprocess)
    emb = torch.randn(24, 128, generator=torch.Generator().manual_seed(0))
    rows = np.arange(24)
    total, _ = objective.loss(model, emb, rows)
    y = torch.from_numpy(labels)
    expected = sum(in_batch_pair_loss(model, part, y)[0] + cosface(part, y)
                   for part, cosface in zip((emb[:, :64], emb[:, 64:]), objective.cosface))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    state = objective.state_dict()
    assert set(state) == {"0.weight", "1.weight"}
    objective.load_state_dict(state)


def test_random_erase_fills_one_seeded_rectangle_of_noise_in_about_half_the_images() -> None:
    x = torch.zeros(200, 2, 20, 30)
    spec = Preprocess(mean=0.5, std=0.5)
    out = random_erase(x, torch.Generator().manual_seed(3), 0.5, spec)
    assert torch.equal(out, random_erase(x, torch.Generator().manual_seed(3), 0.5, spec))
    changed = (out != 0).any(1)  # pixels of the noise rectangle (noise is never exactly 0 here)
    erased = 0
    for mask in changed:
        if not mask.any():
            continue
        erased += 1
        rows, cols = torch.nonzero(mask, as_tuple=True)
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all()), "the erased pixels form one filled rectangle"
        assert 0.01 <= box.numel() / mask.numel() <= 0.27
    assert 70 < erased < 130
    assert float(out.min()) >= -1 and float(out.max()) <= 1  # uniform over [0, 1] pixels scaled by (p - 0.5) / 0.5
    assert torch.equal(random_erase(x, torch.Generator().manual_seed(3), 0.0, spec), x)
