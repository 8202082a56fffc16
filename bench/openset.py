"""Open-set identification on LFW DevTest people: how often a stranger passes the 1:1 threshold against a gallery.

`python -m bench.openset --data-root D [--people 50] [--strangers 500] [--no-detect]`: a gallery of the first
photo of `people` DevTest people with two photos or more (chosen by a seeded draw), their second photos as
genuine queries, and one photo each of `strangers` other DevTest people. Prints, as JSON, at the model's
stored threshold: strangers accepted as someone (with a Wilson 95% interval), genuine queries whose own
person ranks first, and genuine queries accepted as their own person.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from verify_cli import runtime
from verify_cli.cli.options import face_reader
from verify_cli.errors import entry_point
from verify_cli.lfw import LFWRoot, image_relpath
from verify_cli.nway import wilson_interval
from verify_cli.scoring import embed_paths


def measure(model: runtime.Model, lfw: LFWRoot, people: int, strangers: int, no_detect: bool, seed: int = 0) -> dict:
    """The figures the module docstring lists, at the model's stored threshold."""
    counts = lfw.people("test")
    rng = np.random.default_rng(seed)
    multi = sorted(n for n, c in counts.items() if c >= 2)
    chosen = [multi[i] for i in rng.permutation(len(multi))[:people]]
    others = sorted(set(counts) - set(chosen))
    outsiders = [others[i] for i in rng.permutation(len(others))[:strangers]]
    gallery = [image_relpath(n, 1) for n in chosen]
    genuine = [image_relpath(n, 2) for n in chosen]
    stranger = [image_relpath(n, 1) for n in outsiders]
    paths = [lfw.image(p) for p in gallery + genuine + stranger]
    reader = face_reader(model, no_detect, "largest", None, fallback=True)
    emb = embed_paths(model, paths, reader=reader).embeddings
    g, q = emb[:people], emb[people:]
    scores = np.stack([model.score(np.repeat(row[None], people, 0), g) for row in q])  # (queries, people)
    best = scores.max(1)
    accepted = best >= model.threshold
    strangers_in = int(accepted[people:].sum())
    own_first = scores[:people].argmax(1) == np.arange(people)
    low, high = wilson_interval(strangers_in, len(outsiders))
    return {
        "threshold": model.threshold, "gallery_people": people, "strangers": len(outsiders),
        "faces": "fixed crop" if no_detect else "detected",
        "strangers_accepted": strangers_in, "strangers_accepted_ci95": [low, high],
        "genuine_own_person_first": int(own_first.sum()),
        "genuine_accepted_as_own_person": int((own_first & accepted[:people]).sum()),
    }


def main() -> None:
    """`python -m bench.openset`: print the figures as JSON, or one `error:` line and exit 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--strangers", type=int, default=500)
    parser.add_argument("--no-detect", action="store_true")
    args = parser.parse_args()
    with entry_point():
        model = runtime.Model(args.model, "cpu")
        figures = measure(model, LFWRoot.open(args.data_root), args.people, args.strangers, args.no_detect)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
