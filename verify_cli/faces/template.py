"""The LFW deep-funneled frame: where the 5 landmarks sit in a 250x250 image, as measured by export/template.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from verify_cli.errors import FaceverifyError

TEMPLATE_FILE = "lfw_template.json"
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)
class Template:
    """Mean landmark positions (5, 2) at pixel centres in a frame of `size` (width, height)."""

    landmarks: np.ndarray
    size: tuple[int, int]

    @property
    def eye_distance(self) -> float:
        """Pixels between the two eyes in the frame."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    @classmethod
    def from_json(cls, text: str) -> Template:
        """Read the template file written by export/template.py."""
        try:
            data = json.loads(text)
            points = np.array([data["landmarks"][name] for name in LANDMARKS], np.float64)
            size = (int(data["size"][0]), int(data["size"][1]))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise FaceverifyError(f"{TEMPLATE_FILE}: invalid face template ({exc})") from None
        if points.shape != (5, 2) or not np.isfinite(points).all():
            raise FaceverifyError(f"{TEMPLATE_FILE}: invalid face template (landmarks {points.shape})")
        return cls(points, size)


@lru_cache(maxsize=1)
def lfw_template() -> Template:
    """The template shipped with the package (measured on LFW View 1 DevTrain people only)."""
    return Template.from_json((resources.files("verify_cli.faces") / TEMPLATE_FILE).read_text(encoding="utf-8"))
