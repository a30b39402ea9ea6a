"""SynthScenes' vocabulary: the shape classes, the textures, the splits and their conditions,
the normalisation statistics, and the checks of the generator's arguments."""
from __future__ import annotations

import numpy as np

#: Shape classes; the class label of an image is the index of its object's shape here.
CLASSES: tuple[str, ...] = (
    "disc", "square", "triangle", "cross", "star",
    "ring", "crescent", "arrow", "heart", "hourglass",
)
#: Textures; texture ``i`` is class ``i``'s "own" texture.
TEXTURES: tuple[str, ...] = (
    "stripes", "checker", "dots", "waves", "grid",
    "blobs", "zigzag", "rings", "bricks", "speckle",
)

#: Per-channel mean and std of SynthScenes ``train`` images in [0, 1] (default config; measured
#: on 6000 images for seeds 0 and 1, which agree to 0.002, and rounded). ``normalize`` uses them.
MEAN: tuple[float, float, float] = (0.495, 0.482, 0.471)
STD: tuple[float, float, float] = (0.185, 0.175, 0.180)

#: OOD datasets and their conditions, in model-vs-human's naming.
OOD_CONDITIONS: dict[str, tuple[str, ...]] = {
    "colour": ("cr", "bw"),
    "contrast": ("c100", "c50", "c30", "c15", "c10", "c05", "c03", "c01"),
    "high-pass": ("inf", "3", "2", "1.5", "1", "0.7", "0.5"),
    "low-pass": ("0", "0.5", "1", "1.5", "2", "3", "4"),
    "phase-scrambling": ("0", "30", "60", "90", "120", "150", "180"),
    "uniform-noise": ("0.0", "0.03", "0.05", "0.1", "0.2", "0.35", "0.6", "0.9"),
    "rotation": ("0", "90", "180", "270"),
    "edge": ("0",),
    "silhouette": ("0",),
}
#: The splits drawn directly (not as distortions of shared scenes).
BASE_CONDITIONS: dict[str, tuple[str, ...]] = {"train": ("0",), "clean": ("0",), "cue-conflict": ("0",)}
#: Every accepted ``split`` name with its conditions.
SPLITS: dict[str, tuple[str, ...]] = {**BASE_CONDITIONS, **OOD_CONDITIONS}


def check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32 or size % 8:
        raise ValueError(
            f"size={size!r} is not accepted; expected an int that is a multiple of 8 and at least 32 "
            f"(e.g. 32, 64, 96, 128), so that stride-8 CNNs and patch-8 ViTs see a whole feature grid")
    return int(size)


def check_prob(texture_prob) -> float:
    try:
        p = float(texture_prob)
    except (TypeError, ValueError):
        p = float("nan")
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"texture_prob={texture_prob!r} is not accepted; expected a probability in [0, 1]")
    return p


def check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; accepted splits: {', '.join(SPLITS)}")
    return split


def conditions(split: str) -> tuple[str, ...]:
    """The conditions of ``split`` (``("0",)`` for datasets without levels)."""
    return SPLITS[check_split(split)]


def ood_splits() -> list[tuple[str, tuple[str, ...]]]:
    """``[(dataset, conditions), ...]`` for every OOD dataset, in a fixed order."""
    return list(OOD_CONDITIONS.items())
