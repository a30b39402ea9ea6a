"""Fixed, seeded subsets of image ids, shared by the VOC, COCO and ImageNet readers."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def select_images(ids: Sequence[str], n: int | None, seed: int | Sequence[int] = 0) -> list[str]:
    """A fixed subset of ``n`` ids that depends only on the set of ids, ``n`` and ``seed``.

    The ids are sorted, permuted with ``numpy.random.default_rng(seed)``, the first ``n`` of
    the permutation are taken and returned *sorted*. Input order (e.g. directory order) has no
    effect, and for one seed a smaller subset is contained in a larger one. ``n=None`` returns
    all ids, sorted. ``seed`` is anything ``default_rng`` accepts (an int, or a list of ints).
    """
    ids = [str(i) for i in ids]
    ordered = sorted(set(ids))
    if len(ordered) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"select_images: ids must be unique; repeated: {dup}")
    if n is None:
        return ordered
    if not (0 <= int(n) <= len(ordered)):
        raise ValueError(f"select_images: n={n} but there are {len(ordered)} images to choose from")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return sorted(ordered[j] for j in perm[: int(n)])
