"""The generator: :class:`SynthScenes` (its configuration) and :func:`make_split`, which draw the
scene parameters from named, seeded streams, render them and apply a split's distortions."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..boxes import masks_to_boxes
from .batch import SceneBatch
from .distortions import distort
from .render import render
from .sampling import MAX_DISTRACTORS, draw
from .splits import BASE_CONDITIONS, SPLITS, check_prob, check_size, check_split


def _rng(seed: int, *stream: str) -> np.random.Generator:
    """A generator for one named stream; the name is hashed with SHA-256 (stable everywhere)."""
    key = "\x1f".join(("sparsevis.synthscenes.v1", *stream)).encode("utf-8")
    words = np.frombuffer(hashlib.sha256(key).digest(), dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


@dataclass(frozen=True)
class SynthScenes:
    """Configuration of the generator. ``make_split`` is the entry point.

    size: image side in pixels (multiple of 8, >= 32); texture_prob: probability that a
    train/clean/OOD image of class c has texture c; scale_range: object diameter (of its
    bounding circle) as a fraction of the image side; max_rotation: object rotation is
    uniform in [-max_rotation, max_rotation] degrees; n_distractors: inclusive range of
    background distractors per image; chunk: images rendered at once (memory only; results
    do not depend on it).
    """

    size: int = 64
    texture_prob: float = 0.8
    scale_range: tuple[float, float] = (0.45, 0.75)
    max_rotation: float = 30.0
    n_distractors: tuple[int, int] = (2, 5)
    chunk: int = 64

    def __post_init__(self):
        check_size(self.size)
        check_prob(self.texture_prob)
        lo, hi = self.scale_range
        if not (0.1 <= lo <= hi <= 0.9):
            raise ValueError(f"scale_range={self.scale_range!r} is not accepted; expected (lo, hi) "
                             f"with 0.1 <= lo <= hi <= 0.9 (fractions of the image side)")
        if not (0.0 <= self.max_rotation <= 180.0):
            raise ValueError(f"max_rotation={self.max_rotation!r} is not accepted; expected degrees in [0, 180]")
        a, b = self.n_distractors
        if not (0 <= a <= b <= MAX_DISTRACTORS):
            raise ValueError(f"n_distractors={self.n_distractors!r} is not accepted; expected (lo, hi) "
                             f"with 0 <= lo <= hi <= {MAX_DISTRACTORS}")
        if self.chunk < 1:
            raise ValueError(f"chunk={self.chunk!r} is not accepted; expected a positive int")

    def make_split(self, split: str, n: int, seed: int = 0, condition: str | None = None) -> SceneBatch:
        """``n`` images of ``split`` (see :mod:`sparsevis.data.synthscenes`). For an OOD dataset, ``condition=None``
        gives every condition (``n`` images each, the same ``n`` scenes, conditions in the order
        of ``conditions(split)``); a condition name gives that condition only."""
        check_split(split)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} is not accepted; expected a positive int (images per condition)")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed={seed!r} is not accepted; expected a non-negative int")
        accepted = SPLITS[split]
        if condition is None:
            conds = accepted
        elif condition in accepted:
            conds = (condition,)
        else:
            raise ValueError(f"condition={condition!r} is not a condition of split {split!r}; "
                             f"accepted: {', '.join(accepted)} (or None for all)")
        n, seed = int(n), int(seed)
        if split in BASE_CONDITIONS:
            params = self._draw(_rng(seed, "scenes", split), n, cue_conflict=split == "cue-conflict")
            return self._batch(*render(params, self.size, self.chunk), params, split, "0", seed)
        params = self._draw(_rng(seed, "scenes", "ood"), n, cue_conflict=False)
        if split in ("edge", "silhouette"):
            return self._batch(*render(params, self.size, self.chunk, kind=split), params, split, "0", seed)
        base, masks, boxes = render(params, self.size, self.chunk)
        out = []
        for c in conds:
            img = distort(base, split, c, _rng(seed, "distortion", split, c), self.size, self.chunk)
            if split == "rotation":
                k = int(c) // 90
                m = torch.rot90(masks, k, dims=(-2, -1)).contiguous()
                out.append(self._batch(img, m, masks_to_boxes(m).to(torch.float32), params, split, c, seed))
            else:
                out.append(self._batch(img, masks, boxes, params, split, c, seed))
        return SceneBatch.concat(out)

    def _draw(self, rng: np.random.Generator, n: int, cue_conflict: bool) -> dict:
        return draw(rng, n, cue_conflict, self.size, self.texture_prob, self.scale_range, self.max_rotation,
                    self.n_distractors)

    def _batch(self, images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, p: dict, dataset: str,
               condition: str, seed: int) -> SceneBatch:
        n = images.shape[0]
        meta = {"seed": seed, "size": self.size, "texture_prob": self.texture_prob, "config": self}
        return SceneBatch(images, torch.from_numpy(p["label"]).long(), torch.from_numpy(p["texture"]).long(),
                          boxes, masks, [dataset] * n, [condition] * n, meta)


def make_split(split: str, n: int, seed: int = 0, size: int = 64, texture_prob: float = 0.8,
               condition: str | None = None, **config) -> SceneBatch:
    """``SynthScenes(size=size, texture_prob=texture_prob, **config).make_split(split, n, seed, condition)``.

    ``split`` is one of ``SPLITS`` (``train``, ``clean``, ``cue-conflict`` and the OOD datasets
    of ``ood_splits()``); ``n`` is the number of images (per condition for OOD datasets)."""
    check_split(split)
    return SynthScenes(size=check_size(size), texture_prob=check_prob(texture_prob), **config).make_split(
        split, n, seed, condition)
