"""The training loop: `fit` runs epochs with early stopping and atomic checkpoints (train/summary.py reports once)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models import SiameseNet, build_model
from models.typed_config import differences
from train import checkpoint
from train.config import TrainConfig
from train.data import Data, ImageBank, PairSet, augment, photometric, random_erase, shift_and_flip
from train.distributed import SINGLE, Ranks, from_main, my_share, share_buffers, sum_over_ranks, weights_agree
from train.lookalike import lookalike_set
from train.objectives import Objective, make_objective
from verify_cli import metrics
from verify_cli.cpu import training_precision
from verify_cli.errors import FaceverifyError, first_line
from verify_cli.preprocess import Preprocess

LAST, BEST = "last.pt", "best.pt"


def pick_device(ranks: Ranks = SINGLE) -> torch.device:
    """CUDA when available (this machine's rank's device under torchrun), else the CPU."""
    return torch.device("cuda", ranks.local) if torch.cuda.is_available() else torch.device("cpu")


def fixed_order_kernels(device: torch.device) -> None:
    """On the CPU, kernels that add in a fixed order, so that the same seed and thread count give bit-identical
    weights. Without it the backward of indexing (the pair loss's `emb[i]`) adds rows with atomics from every
    thread, in an order that changes from run to run (on 2 threads, 299 of 300 repeats of one training step gave
    the pair loss a different gradient); the fixed order costs nothing measurable (see README, Reproducibility)."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)


def epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    """Every random draw of an epoch derives from (seed, epoch), so a resumed run repeats an unbroken one."""
    return cfg.seed * 1_000_003 + epoch


def resolve_precision(cfg: TrainConfig, device: torch.device) -> tuple[TrainConfig, str]:
    """The configuration with precision "auto" resolved for this device (bf16 where it is native, else fp32; the
    rule is verify_cli.cpu.training_precision), and why, in words. Checkpoints keep the resolved value."""
    cuda_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else None
    choice = training_precision(cfg.precision, cuda_bf16)
    return replace(cfg, precision=choice.precision), choice.reason


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The context a run's forward passes run in: bfloat16 autocast for precision "bf16", else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of images on the device, channels-last (oneDNN's and cuDNN's fast layout for convolutions)."""
    return x.to(device).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def embed_rows(model: SiameseNet, bank: ImageBank, rows: np.ndarray, spec: Preprocess, device: torch.device,
               batch_size: int = 256, precision: str = "fp32") -> torch.Tensor:
    """Embeddings (eval mode, float32 out) for bank rows, in batches."""
    model.eval()
    with autocast(device, precision):
        out = [model.embed(to_device(bank.batch(rows[s : s + batch_size], spec), device)).float()
               for s in range(0, rows.size, batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def pair_embeddings(model: SiameseNet, bank: ImageBank, sets: list[PairSet], spec: Preprocess, device: torch.device,
                    precision: str = "fp32") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each set of pairs, the embeddings of its left and of its right images; every distinct image of all the
    sets is embedded once."""
    rows, inverse = np.unique(np.concatenate([side for p in sets for side in (p.left, p.right)]), return_inverse=True)
    emb = embed_rows(model, bank, rows, spec, device, precision=precision)
    out, start = [], 0
    for pairs in sets:
        n = len(pairs)
        out.append((emb[inverse[start : start + n]], emb[inverse[start + n : start + 2 * n]]))
        start += 2 * n
    return out


@torch.no_grad()
def set_probabilities(model: SiameseNet, bank: ImageBank, sets: list[PairSet], spec: Preprocess,
                      device: torch.device, precision: str = "fp32") -> list[tuple[np.ndarray, float]]:
    """For each set of pairs, the probability of "same" of each pair and the mean BCE loss (`pair_embeddings`)."""
    out = []
    for pairs, (a, b) in zip(sets, pair_embeddings(model, bank, sets, spec, device, precision), strict=True):
        logits = model.score(a, b)
        labels = torch.from_numpy(pairs.labels).to(logits.device)
        loss = float(F.binary_cross_entropy_with_logits(logits, labels))
        out.append((torch.sigmoid(logits).double().cpu().numpy(), loss))
    return out


def pair_probabilities(model: SiameseNet, bank: ImageBank, pairs: PairSet, spec: Preprocess,
                       device: torch.device, precision: str = "fp32") -> tuple[np.ndarray, float]:
    """Probability of "same" for each pair, each distinct image embedded once; and the mean BCE loss."""
    return set_probabilities(model, bank, [pairs], spec, device, precision)[0]


@dataclass
class State:
    """What a resumed run needs besides the model: optimiser, schedule, history, early-stopping counters."""

    model: SiameseNet
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_step: bool  # the scheduler steps after every optimisation step (one-cycle), else after every epoch
    history: list[dict[str, Any]]
    best: float
    bad_epochs: int = 0
    done: bool = False
    ema: AveragedModel | None = None  # exponential moving average of the weights (cfg.ema > 0)
    ranks: Ranks = SINGLE
    ddp: DistributedDataParallel | None = None  # the training step's forward, under torchrun

    @property
    def steps(self) -> int:
        """Optimisation steps per epoch on each rank (the objective's batches shared among the ranks)."""
        return self.objective.steps() // self.ranks.world

    @property
    def evaluated(self) -> SiameseNet:
        """The network that is validated and kept: the weights' moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model


class Step(nn.Module):
    """A training step's forward as one module, so that DistributedDataParallel sees every trained parameter:
    the network's embeddings (under the run's autocast), then the objective's loss and accuracy."""

    def __init__(self, cfg: TrainConfig, model: SiameseNet, objective: Objective) -> None:
        super().__init__()
        self.model, self.extra = model, nn.ParameterList(objective.parameters())
        self.objective, self.precision = objective, cfg.precision

    def forward(self, x: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, float]:
        with autocast(x.device, self.precision):
            emb = self.model.embed(x)
        return self.objective.loss(self.model, emb.float(), rows)  # losses in float32 whatever the precision


def build_state(cfg: TrainConfig, data: Data, device: torch.device, ranks: Ranks = SINGLE) -> State:
    """A fresh run's model, objective, optimiser and schedule, seeded from the configuration."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.preprocess).to(device, memory_format=torch.channels_last)
    objective = make_objective(cfg, data, device)
    params = list(model.parameters()) + objective.parameters()
    if cfg.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    else:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedules = torch.optim.lr_scheduler
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if cfg.schedule == "onecycle":
        total = cfg.max_epochs * (objective.steps() // ranks.world)
        scheduler = schedules.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, cycle_momentum=False)
    elif cfg.schedule == "cosine":
        scheduler = schedules.CosineAnnealingLR(optimizer, T_max=cfg.max_epochs)
    else:
        scheduler = schedules.ExponentialLR(optimizer, gamma=cfg.lr_decay)
    best = math.inf if cfg.monitor == "val_loss" else -math.inf
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    return State(model, objective, optimizer, scheduler, cfg.schedule == "onecycle", [], best, ema=ema, ranks=ranks)


def _state_dict(cfg: TrainConfig, st: State) -> dict[str, Any]:
    return {
        "format": checkpoint.FORMAT,
        "config": cfg.as_dict(),
        "model": st.model.state_dict(),
        "ema": st.ema.state_dict() if st.ema is not None else None,
        "optimizer": st.optimizer.state_dict(),
        "scheduler": st.scheduler.state_dict(),
        "objective": st.objective.state_dict(),
        "history": st.history,
        "best": st.best,
        "bad_epochs": st.bad_epochs,
        "done": st.done,
    }


def objective_state(saved: dict[str, Any]) -> dict[str, Any]:
    """The objective's state in a last.pt. One written before the key was "objective" (the report's experiment runs,
    runs of fv-plain and fv-patches) holds it as "identity_loss", a one-tower run's CosFace weight as "weight"."""
    if "objective" in saved:
        return saved["objective"]
    return {"0.weight" if key == "weight" else key: value for key, value in saved["identity_loss"].items()}


def _restore(cfg: TrainConfig, st: State, saved: dict[str, Any], path: Path) -> None:
    try:
        written_by = TrainConfig.from_dict(saved["config"])
    except FaceverifyError as exc:
        raise FaceverifyError(f"{path}: {exc.message}") from None
    if written_by != cfg:  # fields added later with defaults, and retired ones, still match
        changed = [d for d in differences(written_by, cfg) if not d.startswith("description ")]
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise FaceverifyError(
            f"{path}: was written by a different configuration ({shown}); use another --run-dir "
            "(make train RUN=...) or remove the old run (make clean)"
        )
    try:
        st.model.load_state_dict(saved["model"])
        if st.ema is not None:
            st.ema.load_state_dict(saved["ema"])
        st.optimizer.load_state_dict(saved["optimizer"])
        st.scheduler.load_state_dict(saved["scheduler"])
        st.objective.load_state_dict(objective_state(saved))
        st.history, st.best = list(saved["history"]), float(saved["best"])
        st.bad_epochs, st.done = int(saved["bad_epochs"]), bool(saved["done"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:  # a damaged or hand-made checkpoint
        raise FaceverifyError(f"{path}: not a resumable checkpoint ({type(exc).__name__}: {first_line(exc, 160)})") from None


def train_step(cfg: TrainConfig, st: State, data: Data, rows: np.ndarray, device: torch.device,
               gen: torch.Generator) -> tuple[float, float]:
    """One optimisation step on a batch of rows (augmented from `gen`); returns its loss and accuracy."""
    x = data.bank.batch(st.objective.images(rows), cfg.preprocess)
    if cfg.augment:
        x = augment(x, gen)
    if cfg.shift:
        x = shift_and_flip(x, gen, cfg.shift)
    if cfg.color > 0:
        x = photometric(x, gen, cfg.color)
    if cfg.erase > 0:
        x = random_erase(x, gen, cfg.erase, cfg.preprocess)
    if st.ddp is not None:
        loss, acc = st.ddp(to_device(x, device), rows)  # DDP averages the gradients over the ranks in backward
    else:
        with autocast(device, cfg.precision):
            emb = st.model.embed(to_device(x, device))
        loss, acc = st.objective.loss(st.model, emb.float(), rows)  # losses in float32 whatever the precision
    st.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    st.optimizer.step()
    if st.ema is not None:
        st.ema.update_parameters(st.model)
    if st.per_step:
        st.scheduler.step()
    return loss.item(), acc


def _train_epoch(cfg: TrainConfig, st: State, data: Data, device: torch.device, epoch: int,
                 progress: Progress) -> tuple[float, float]:
    """One pass over the training data; returns mean loss and accuracy (at probability 0.5)."""
    seed = epoch_seed(cfg, epoch)
    torch.manual_seed(seed)  # dropout
    gen = torch.Generator().manual_seed(seed)  # order and augmentation
    st.model.train()
    task = progress.add_task(f"epoch {epoch}", total=st.steps)
    total_loss = total_acc = 0.0
    count = 0
    batches = st.objective.batches(gen)
    for rows in my_share(list(batches), st.ranks) if st.ranks.distributed else batches:
        loss, acc = train_step(cfg, st, data, rows, device, gen)
        total_loss += loss * len(rows)
        total_acc += acc * len(rows)
        count += len(rows)
        progress.update(task, advance=1, description=f"epoch {epoch} loss {total_loss / count:.4f}")
    progress.remove_task(task)
    total_loss, total_acc, count = sum_over_ranks([total_loss, total_acc, count], st.ranks)
    return total_loss / max(count, 1), total_acc / max(count, 1)


def lookalike_auc(probs: np.ndarray, alike: PairSet) -> float:
    """ROC AUC on the look-alike set; NaN when it holds no stranger or no same-person pair (tiny data)."""
    same = alike.labels > 0.5
    return metrics.roc_auc(probs, alike.labels) if 0 < same.sum() < same.size else math.nan


def validation_se(accuracy: float, auc: float, pairs: PairSet) -> dict[str, float]:
    """Standard errors beside the validation figures, so that two presets' figures can be told apart (or not)."""
    positives = int((pairs.labels > 0.5).sum())
    return {"accuracy_se": metrics.accuracy_se(accuracy, len(pairs)),
            "roc_auc_se": metrics.auc_se(auc, positives, len(pairs) - positives)}


def _improved(cfg: TrainConfig, value: float, best: float) -> bool:
    return value < best if cfg.monitor == "val_loss" else value > best


def join_ranks(cfg: TrainConfig, st: State, device: torch.device) -> None:
    """Under torchrun: the training step runs through DistributedDataParallel (which starts every rank from rank
    0's weights and averages the gradients in backward)."""
    st.ddp = DistributedDataParallel(Step(cfg, st.model, st.objective),
                                     device_ids=[device.index] if device.type == "cuda" else None)


def _sync_ranks(st: State, epoch: int) -> None:
    """After an epoch under torchrun: rank 0's BatchNorm statistics everywhere, then check that every rank holds
    the same weights (DDP keeps the parameters equal; a difference would make the ranks' figures disagree)."""
    share_buffers(st.model, st.ranks)
    if st.ema is not None:
        share_buffers(st.ema, st.ranks)
    if not weights_agree(st.evaluated, st.ranks):
        raise FaceverifyError(f"torchrun: the ranks hold different weights after epoch {epoch}")


def fit(cfg: TrainConfig, data: Data, run_dir: Path, resume: bool = False, console: Console | None = None,
        max_epochs: int | None = None, ranks: Ranks = SINGLE) -> list[dict[str, Any]]:
    """Train until early stopping or the epoch limit; keeps `best.pt` (monitored figure) and `last.pt`.

    Under torchrun every rank runs this; rank 0 alone writes files and prints.
    """
    console = console or Console(stderr=True, soft_wrap=True)
    if not ranks.main:
        console = Console(quiet=True)
    device = pick_device(ranks)
    fixed_order_kernels(device)
    cfg, why = resolve_precision(cfg, device)
    console.print(f"precision {cfg.precision} ({why})")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceverifyError(f"{run_dir}: cannot create the run folder ({exc.strerror or exc})") from None
    st = build_state(cfg, data, device, ranks)
    last = run_dir / LAST
    if resume and last.exists():
        _restore(cfg, st, checkpoint.load(last), last)
        console.print(f"resuming {run_dir} after epoch {len(st.history)}")
    elif not resume and ((run_dir / BEST).exists() or last.exists()):
        # with --resume and no last.pt no epoch was committed yet: epoch 1 rewrites any best.pt left there
        raise FaceverifyError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    if ranks.distributed:  # after every rank has checked the run folder: rank 0 writes nothing before this
        if st.steps < 1:
            raise FaceverifyError(f"an epoch has {st.objective.steps()} batches, fewer than the {ranks.world} "
                                  "processes; use fewer processes or a smaller batch")
        join_ranks(cfg, st, device)
    limit = max_epochs or cfg.max_epochs
    alike = lookalike_set(data.bank, data.val)  # the same look-alike strangers every epoch: LBP, no network
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        while not st.done and len(st.history) < limit:
            epoch = len(st.history) + 1
            start = time.perf_counter()
            train_loss, train_acc = _train_epoch(cfg, st, data, device, epoch, progress)
            lr = st.optimizer.param_groups[0]["lr"]  # one-cycle: the epoch's last step's
            if not st.per_step:
                st.scheduler.step()
            _sync_ranks(st, epoch)
            # validation in float32 whatever the precision: it picks the checkpoint, so it must repeat exactly
            # (bf16 validation did not, between two runs holding the same weights), and it is what serving computes
            (probs, val_loss), (alike_probs, _) = set_probabilities(
                st.evaluated, data.bank, [data.val, alike], cfg.preprocess, device)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": float(np.mean((probs >= 0.5) == (data.val.labels > 0.5))),
                "val_auc": metrics.roc_auc(probs, data.val.labels),
                "lr": lr,
                "seconds": time.perf_counter() - start,
            }
            row["val_auc_se"] = validation_se(row["val_accuracy"], row["val_auc"], data.val)["roc_auc_se"]
            row["val_lookalike_auc"] = lookalike_auc(alike_probs, alike)
            row["val_auc_mean"] = (row["val_auc"] + row["val_lookalike_auc"]) / 2
            row = from_main(row, ranks)  # rank 0's figures decide on every rank, so that all take the same path
            st.history.append(row)
            value = row[cfg.monitor]
            if _improved(cfg, value, st.best):
                st.best, st.bad_epochs = value, 0
                if ranks.main:
                    checkpoint.save(_best_dict(cfg, st.evaluated, row), run_dir / BEST)
            else:
                st.bad_epochs += 1
            st.done = st.bad_epochs >= cfg.patience or epoch >= cfg.max_epochs
            # last.pt is written last: it commits the epoch. Interrupted before it, a resume redoes the epoch
            # and rewrites best.pt and history.json with the same figures; after it, both are already whole.
            if ranks.main:
                checkpoint.save_json(st.history, run_dir / "history.json")
                checkpoint.save(_state_dict(cfg, st), last)
            mark = "*" if st.bad_epochs == 0 else " "
            console.print(
                f"epoch {epoch:3d}{mark} train loss {train_loss:.4f} acc {train_acc:.3f} | val loss {val_loss:.4f} "
                f"acc {row['val_accuracy']:.3f} auc {row['val_auc']:.3f} look-alike auc {row['val_lookalike_auc']:.3f} | lr {lr:.2e} | {row['seconds']:.1f}s"
            )
    if st.done and st.bad_epochs >= cfg.patience:
        console.print(f"early stop: no better {cfg.monitor} for {cfg.patience} epochs")
    return st.history


def _best_dict(cfg: TrainConfig, model: SiameseNet, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": checkpoint.FORMAT,
        "config": cfg.as_dict(),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": row["epoch"],
        "selected_by": cfg.monitor,
        "validation": {k: row[k] for k in ("val_loss", "val_accuracy", "val_auc")},
    }


def load_model(saved: dict[str, Any]) -> tuple[TrainConfig, SiameseNet]:
    """Rebuild a network in eval mode from a best/last checkpoint dictionary."""
    cfg = TrainConfig.from_dict(saved["config"])
    model = build_model(cfg.model, cfg.preprocess)
    try:
        model.load_state_dict(saved["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise FaceverifyError(f"checkpoint weights do not fit preset {cfg.preset}: {first_line(exc)}") from None
    return cfg, model.eval()
