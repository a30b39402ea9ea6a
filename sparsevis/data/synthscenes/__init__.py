"""SynthScenes: procedural scenes with exact labels, boxes and masks, for the synthetic track.

A controlled, CPU-sized stand-in for ImageNet + PASCAL VOC + model-vs-human. Every image holds
exactly one labelled object - a *shape* (the class) filled with a *texture* (a pattern with its
own two colours) - on a cluttered, low-contrast background with a few small distractors
(ellipse blobs and thin line segments, which are never class shapes and are much smaller than
the object). For each image we know the class, the texture, the object's pixel mask and its
tight bounding box, so attribution maps (mask), object discovery (box) and shape-vs-texture
decisions (cue-conflict) can be scored exactly.

Splits (``make_split(split, ...)``), named and conditioned like model-vs-human's datasets:

``train``
    Class ``c`` is drawn with its "own" texture ``c`` with probability ``texture_prob``;
    otherwise with a texture drawn uniformly from *all* textures (which can again be ``c``).
    The shape always decides the class; the texture is a shortcut that agrees with the class
    with probability ``texture_prob + (1 - texture_prob) / len(TEXTURES)`` (0.82 for the
    default 0.8; ``texture_prob=0`` makes texture independent of class).
``clean``
    The held-out test set: drawn exactly like ``train`` (same ``texture_prob``), from an
    independent random stream.
``cue-conflict``
    Shape of one class, texture of another class, never equal (texture uniform over the other
    classes' textures). ``labels`` is the shape class, ``texture_labels`` the texture class;
    ``metrics.shape_bias(decisions, batch.labels, batch.texture_labels)`` applies directly.
OOD datasets (``ood_splits()``)
    Distortions of one shared set of clean test scenes (drawn like ``clean`` but from their own
    stream, the same scenes for every OOD dataset and condition: a paired design, as
    model-vs-human's parametric datasets are). As in Geirhos et al. (2018, 2021), every
    parametric distortion is applied to the *greyscale* image; the levels are chosen for
    64-px images and scaled with ``size / 64`` where they are lengths (blur sigmas):

    - ``colour``: ``cr`` (colour), ``bw`` (greyscale, luminance 0.2125 R + 0.7154 G + 0.0721 B)
    - ``contrast``: ``c100 ... c01`` -> ``c * x + (1 - c) * 0.5``
    - ``low-pass``: Gaussian blur, sigma in pixels (at 64 px)
    - ``high-pass``: ``x - blur(x, sigma) + 0.5``, sigma in pixels (``inf``: unfiltered)
    - ``uniform-noise``: contrast 30 %, plus uniform noise in ``[-w, w]``, clipped
    - ``phase-scrambling``: Fourier phases plus uniform noise in ``[-w, w]`` degrees
    - ``rotation``: 0/90/180/270 degrees counter-clockwise (as displayed); masks and boxes
      are rotated with the image
    - ``edge``: the object's outline only, dark on white (no background, no texture)
    - ``silhouette``: the object filled black on white; its dark pixels (< 128) are exactly
      the object mask

Geometry and appearance: the object's bounding circle has a diameter of 45-75 % of the image
side (tight boxes 15-48 px at 64 px, ~16 % of the pixels on average); it lies wholly inside the
image. Each texture has its own two colours (jittered per image), so colour is part of the
texture cue and the ``colour/bw`` condition removes that part.

Each sample records ``dataset`` and ``condition`` strings as model-vs-human does (``"0"`` for
datasets without levels). Objects are rendered with a small random rotation
(``max_rotation``, default +-30 deg) so the classes have a canonical orientation and the
``rotation`` dataset is out of distribution.

Determinism: all randomness comes from explicit ``numpy.random.Generator`` streams seeded from
``(seed, stream name)`` through SHA-256 (never Python's ``hash()`` and never global RNG state),
so splits are independent of each other and of the order in which they are made, and the same
arguments give the same bytes (on the same platform and torch version; elementwise float32
maths may differ in the last bit across CPU instruction sets). Rendering is batched torch code:
shapes are signed-distance tables sampled with ``grid_sample``; textures are functions of
object-local coordinates.

One module per job, imported one way; every public name is importable from here:
:mod:`~.splits` (classes, textures, splits, argument checks), :mod:`~.shapes` (signed
distances), :mod:`~.textures` (patterns and their colours), :mod:`~.sampling` (scene
parameters), :mod:`~.render` (drawing a scene), :mod:`~.distortions` (the OOD conditions),
:mod:`~.batch` (:class:`SceneBatch`), :mod:`~.generator` (:class:`SynthScenes`,
:func:`make_split`), :mod:`~.dataset` (normalisation, :class:`SceneDataset`) and
:mod:`~.preview` (:func:`save_grid_png`).
"""
from __future__ import annotations

from .batch import SceneBatch
from .dataset import SceneDataset, denormalize, normalize
from .generator import SynthScenes, make_split
from .preview import save_grid_png
from .splits import (
    CLASSES,
    MEAN,
    OOD_CONDITIONS,
    SPLITS,
    STD,
    TEXTURES,
    conditions,
    ood_splits,
)

__all__ = [
    "CLASSES", "TEXTURES", "MEAN", "STD", "SPLITS", "OOD_CONDITIONS",
    "SynthScenes", "SceneBatch", "SceneDataset",
    "make_split", "ood_splits", "conditions", "normalize", "denormalize", "save_grid_png",
]
