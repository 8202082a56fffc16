"""Pictures for `faceverify evaluate`, drawn with Pillow only: the ROC curve and a grid of example pairs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from verify_cli import metrics
from verify_cli.scoring import FaceReader

SCALE = 2  # draw at twice the size, then downsample: smooth lines without an anti-aliasing renderer
INK, GRID, MUTED = (33, 37, 41), (222, 226, 230), (134, 142, 150)
BLUE, RED, GREEN = (31, 119, 180), (214, 39, 40), (44, 160, 44)
KINDS = {
    "TP": ("true positive", "same person, said same", GREEN),
    "FP": ("false positive", "different people, said same", RED),
    "TN": ("true negative", "different people, said different", GREEN),
    "FN": ("false negative", "same person, said different", RED),
}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size * SCALE)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _png(img: Image.Image) -> bytes:
    """Downsample the supersampled drawing and encode it as PNG."""
    img = img.resize((img.width // SCALE, img.height // SCALE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def roc_png(scores: np.ndarray, labels: np.ndarray, threshold: float, title: str) -> bytes:
    """The ROC curve (true accept rate against false accept rate) with the operating point at `threshold`."""
    fpr, tpr, _ = metrics.roc_curve(scores, labels)
    auc, eer = metrics.roc_auc(scores, labels), metrics.equal_error_rate(scores, labels)
    s = SCALE
    width, height = 640 * s, 600 * s
    left, top, side = 80 * s, 60 * s, 480 * s
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    small, normal = _font(12), _font(15)

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + x * side, top + (1.0 - y) * side

    for tick in np.linspace(0.0, 1.0, 6):
        draw.line([xy(tick, 0), xy(tick, 1)], fill=GRID, width=s)
        draw.line([xy(0, tick), xy(1, tick)], fill=GRID, width=s)
        draw.text((xy(tick, 0)[0], top + side + 8 * s), f"{tick:.1f}", fill=INK, font=small, anchor="mt")
        draw.text((left - 8 * s, xy(0, tick)[1]), f"{tick:.1f}", fill=INK, font=small, anchor="rm")
    for k in range(0, 40, 2):  # the chance diagonal, dashed
        draw.line([xy(k / 40, k / 40), xy((k + 1) / 40, (k + 1) / 40)], fill=MUTED, width=s)
    draw.rectangle([xy(0, 1), xy(1, 0)], outline=INK, width=s)
    draw.line([xy(float(x), float(y)) for x, y in zip(fpr, tpr)], fill=BLUE, width=3 * s, joint="curve")

    pred, same = scores >= threshold, labels.astype(bool)
    op_fpr = float(np.mean(pred[~same])) if (~same).any() else 0.0
    op_tpr = float(np.mean(pred[same])) if same.any() else 0.0
    cx, cy = xy(op_fpr, op_tpr)
    r = 6 * s
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=RED, outline="white", width=s)
    right_side = op_fpr < 0.7
    draw.text((cx + (10 if right_side else -10) * s, cy - 8 * s), f"threshold {threshold:.3f}", fill=RED,
              font=small, anchor="lb" if right_side else "rb")

    draw.text((width // 2, 22 * s), title, fill=INK, font=normal, anchor="mm")
    legend = f"AUC {auc:.4f}   EER {eer:.4f}   {len(scores)} pairs"
    draw.text(xy(0.97, 0.04), legend, fill=BLUE, font=normal, anchor="rb")
    draw.text((left + side // 2, top + side + 34 * s), "false accept rate (FPR)", fill=INK, font=normal, anchor="mt")
    label = Image.new("RGB", (side, 24 * s), "white")
    ImageDraw.Draw(label).text((side // 2, 12 * s), "true accept rate (TPR)", fill=INK, font=normal, anchor="mm")
    img.paste(label.rotate(90, expand=True), (14 * s, top))
    return _png(img)


def pick_examples(scores: np.ndarray, labels: np.ndarray, threshold: float, per_kind: int) -> dict[str, list[int]]:
    """Pair indices of each outcome, most confident first: TP/FP by highest score, TN/FN by lowest."""
    pred, same = scores >= threshold, labels.astype(bool)
    masks = {"TP": pred & same, "FP": pred & ~same, "TN": ~pred & ~same, "FN": ~pred & same}
    picked = {}
    for kind, mask in masks.items():
        idx = np.flatnonzero(mask)
        order = np.argsort(-scores[idx] if kind in ("TP", "FP") else scores[idx], kind="stable")
        picked[kind] = [int(i) for i in idx[order][:per_kind]]
    return picked


@dataclass(frozen=True)
class Example:
    """One scored pair to show: the two image files, their captions and the model's probability."""

    left: Path
    right: Path
    left_caption: str
    right_caption: str
    score: float


def _fit(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """Shorten a caption with an ellipsis until it fits `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def examples_png(rows: dict[str, Sequence[Example]], threshold: float, reader: FaceReader, title: str) -> bytes:
    """A grid of example pairs per outcome (TP, FP, TN, FN) showing the faces exactly as the model saw them."""
    s = SCALE
    tile = 112 * s
    gap, pair_gap, label_w, caption_h, head_h = 4 * s, 22 * s, 190 * s, 40 * s, 48 * s
    per_row = max([len(v) for v in rows.values()] + [1])
    pair_w = 2 * tile + gap
    width = label_w + per_row * pair_w + (per_row - 1) * pair_gap + 16 * s
    row_h = tile + caption_h + 18 * s
    img = Image.new("RGB", (width, head_h + len(KINDS) * row_h), "white")
    draw = ImageDraw.Draw(img)
    small, normal, bold = _font(11), _font(13), _font(15)
    draw.text((12 * s, 16 * s), title, fill=INK, font=bold, anchor="lm")
    draw.text((12 * s, 36 * s), f"probability of same person; decision: same when >= {threshold:.4f}",
              fill=MUTED, font=small, anchor="lm")
    for r, (kind, (name, meaning, colour)) in enumerate(KINDS.items()):
        y = head_h + r * row_h
        draw.line([(0, y), (width, y)], fill=GRID, width=s)
        draw.text((12 * s, y + 14 * s), f"{kind}  {name}", fill=colour, font=bold, anchor="lt")
        draw.text((12 * s, y + 36 * s), meaning, fill=MUTED, font=small, anchor="lt")
        examples = rows.get(kind, [])
        if not examples:
            draw.text((label_w, y + 14 * s), "none", fill=MUTED, font=normal, anchor="lt")
        for c, ex in enumerate(examples):
            x = label_w + c * (pair_w + pair_gap)
            for k, (path, caption) in enumerate(((ex.left, ex.left_caption), (ex.right, ex.right_caption))):
                pixels, _ = reader.pixels(path)
                face = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
                face = face.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC)
                tx = x + k * (tile + gap)
                img.paste(face, (tx, y + 10 * s))
                draw.text((tx, y + 14 * s + tile), _fit(caption, small, tile), fill=INK, font=small, anchor="lt")
            draw.text((x + pair_w // 2, y + 30 * s + tile), f"p = {ex.score:.4f}", fill=colour, font=normal,
                      anchor="mt")
    return _png(img)
