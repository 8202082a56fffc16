"""Every preset builds the structure the report prints, and the Siamese network is symmetric in shape."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from models import build_model
from models.towers import resample_matrix
from train.config import PRESETS, TrainConfig

REPORT_LINEAR = {
    "exp1": (9216, 4096), "exp2": (9216, 4096), "exp3": (9216, 4096), "exp4": (4608, 4096),
    "exp5": (41472, 4096), "exp6": (2304, 120), "exp7": (1152, 120), "exp8": (1152, 32),
    "exp9": (1152, 32), "exp10": (1152, 32),
}


@pytest.mark.parametrize("name", sorted(REPORT_LINEAR))
def test_report_presets_match_the_report(name: str) -> None:
    cfg = PRESETS[name]
    model = build_model(cfg.model, cfg.preprocess)
    linear = model.tower.linear1[0]
    assert (linear.in_features, linear.out_features) == REPORT_LINEAR[name]
    assert model.head.linear2.in_features == REPORT_LINEAR[name][1]
    first = model.tower.layers[0]
    assert first.conv.kernel_size == (10, 10) and first.conv.in_channels == 1
    assert [type(m).__name__ for m in first.children()][:4] == ["Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d"]
    dropout = getattr(first, "drop", None)
    assert (dropout.p if dropout else 0.0) == (0.0 if name == "exp1" else 0.7)
    assert cfg.batch_size == (32 if name in ("exp9", "exp10") else 64)
    assert cfg.max_epochs == (50 if name == "exp10" else 200)
    assert cfg.optimizer == ("sgd" if name in ("exp1", "exp2") else "adamw")


def test_report_init_is_normal_0_001() -> None:
    model = build_model(PRESETS["exp9"].model, PRESETS["exp9"].preprocess)
    weight = model.tower.layers[1].conv.weight.detach()
    assert abs(float(weight.std()) - 0.01) < 0.002 and abs(float(weight.mean())) < 0.002


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_and_round_trips(name: str) -> None:
    cfg = PRESETS[name]
    assert TrainConfig.from_dict(cfg.as_dict()) == cfg
    model = build_model(cfg.model, cfg.preprocess).eval()
    x = torch.rand(2, cfg.preprocess.channels, cfg.preprocess.size, cfg.preprocess.size)
    with torch.no_grad():
        logits = model(x, x.flip(0))
        assert logits.shape == (2,)
        assert torch.allclose(logits, model(x.flip(0), x), atol=1e-5)  # the head is symmetric


def test_plain_tower_keeps_full_resolution_until_each_pool() -> None:
    cfg = PRESETS["fv-plain"]
    tower = build_model(cfg.model, cfg.preprocess).tower
    convs = [m for m in tower.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in tower.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs) and len(pools) == 3
    assert tower.embed.in_features == 256 * 8 * 8  # 64 -> 32 -> 16 -> 8 after three pools


def test_flip_average_mirrors_in_eval_mode_only() -> None:
    cfg = PRESETS["fv-plain"]
    model = build_model(cfg.model, cfg.preprocess)
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        model.eval()
        mirrored = torch.flip(x, dims=(3,))  # left-right
        expected = (model.tower(x) + model.tower(mirrored)) / 2
        assert torch.allclose(model.embed(x), expected, atol=1e-6)
        assert torch.allclose(model.embed(mirrored), model.embed(x), atol=1e-5)  # a mirror image embeds the same
        model.train()
        assert torch.equal(model.embed(x), model.tower(x))


def test_resample_matrix_is_pillows_bilinear_crop_and_resize() -> None:
    from PIL import Image

    assert torch.equal(resample_matrix(80, 64, 64), torch.eye(80)[8:72])  # central 64 of 80: a plain cut
    gen = torch.Generator().manual_seed(0)
    img = (torch.rand(80, 80, generator=gen) * 255).round()
    for length, size in [(80, 64), (60, 64), (70, 35)]:
        r = resample_matrix(80, length, size).double()
        assert torch.allclose(r.sum(1), torch.ones(size, dtype=torch.float64))
        left = (80 - length) / 2
        pil = Image.fromarray(img.numpy().astype("uint8")).resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, left, left + length, left + length))
        ours = r @ img.double() @ r.t()
        assert (ours - torch.from_numpy(np.asarray(pil, dtype=np.float64))).abs().max() <= 1.0


def test_patch_tower_gives_each_branch_its_patch_and_averages_their_cosines() -> None:
    cfg = PRESETS["fv-patches"]
    model = build_model(cfg.model, cfg.preprocess).eval()
    seen: list[torch.Tensor] = []
    for branch in model.tower.branches:
        branch.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    a, b = torch.rand(2, 1, 80, 80), torch.rand(2, 1, 80, 80)
    with torch.no_grad():
        model.flip_average = False
        ea, eb = model.embed(a), model.embed(b)
        assert torch.allclose(seen[1], a[:, :, 8:72, 8:72])  # the tight branch: the central 0.8, uncut pixels
        assert seen[0].shape == (2, 1, 64, 64)  # the wide branch: all 80 px resampled to 64
        halves = [(x[:, :64], x[:, 64:]) for x in (ea, eb)]
        for part in halves[0]:
            assert torch.allclose(part.norm(dim=1), torch.ones(2), atol=1e-5)
        cos = torch.nn.functional.cosine_similarity
        mean = (cos(halves[0][0], halves[1][0]) + cos(halves[0][1], halves[1][1])) / 2
        assert torch.allclose(cos(ea, eb), mean, atol=1e-6)


@pytest.mark.parametrize("changes", [{"embedding": 127}, {"head": "l1"}, {"patch_size": 0}, {"patches": (1.0, 1.2)}])
def test_patches_that_cannot_work_are_one_line(changes: dict) -> None:
    from verify_cli.errors import FaceverifyError

    with pytest.raises(FaceverifyError, match="patch"):
        replace(PRESETS["fv-patches"].model, **changes)
