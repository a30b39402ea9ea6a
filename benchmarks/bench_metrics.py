"""Time the batched relevance-map kernels against the per-image reference loops.

    python benchmarks/bench_metrics.py --device cpu --n 256 --size 224 --repeat 5

Maps are smooth random fields (bilinear upsampling of a 7x7 grid, as Grad-CAM gives), masks
are discs, about 5 % of pixels are void. The kernels run on ``--device``; the references
(tests/reference_metrics.py) run on CPU with NumPy, one image at a time. Both are timed side by
side (benchmarks/bench_common.py): the best of ``--repeat`` rounds after one warm-up; the
results are checked to agree first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sparsevis import metrics
from sparsevis.runtime import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_metrics as ref  # noqa: E402
from bench_common import side_by_side  # noqa: E402

# name, kernel, reference, keywords, bytes per pixel a kernel must read at least (float32 map,
# bool mask, bool valid; the plain pointing game reads the mask at the maximum only)
CASES = [
    ("relevance_mass_accuracy", metrics.relevance_mass_accuracy, ref.rma, {}, 6),
    ("relevance_rank_accuracy", metrics.relevance_rank_accuracy, ref.rra, {}, 6),
    ("pointing_game", metrics.pointing_game, ref.pointing, {}, 5),
    ("pointing_game tol=15", metrics.pointing_game, ref.pointing, {"tolerance": 15}, 6),
]


def make_inputs(n: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    maps = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(size, size), mode="bilinear",
                         align_corners=False).squeeze(1)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(size // 4, 3 * size // 4, (n, 2, 1, 1), generator=g)
    radius = torch.randint(size // 10, size // 3, (n, 1, 1), generator=g)
    masks = (ys - centre[:, 0]) ** 2 + (xs - centre[:, 1]) ** 2 <= radius ** 2
    valid = torch.rand(n, size, size, generator=g) > 0.05
    return maps, masks, valid


def measure(n: int, size: int, repeat: int, device) -> list[dict]:
    """Per metric: maps/s of the batched kernel on ``device`` and of the NumPy per-image
    reference, timed side by side after checking that they agree; ``bytes``: the least the
    kernel must read."""
    device = torch.device(device)
    maps, masks, valid = make_inputs(n, size)
    on_device = [t.to(device) for t in (maps, masks, valid)]
    as_numpy = [t.numpy() for t in (maps, masks, valid)]
    rows = []
    for name, kernel, reference, kw, per_pixel in CASES:
        got = kernel(*on_device, **kw).cpu().numpy()
        want = reference(*as_numpy, **kw)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-4, atol=1e-6,
                                   equal_nan=True)
        t = side_by_side({"kernel": lambda: kernel(*on_device, **kw),
                          "reference": lambda: reference(*as_numpy, **kw)}, repeat, device)
        rows.append(dict(metric=name, n=n, size=size, bytes=n * size * size * per_pixel,
                         kernel=n / t["kernel"], reference=n / t["reference"]))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' (kernels only)")
    parser.add_argument("--n", type=int, default=256, help="number of maps")
    parser.add_argument("--size", type=int, default=224, help="map height and width")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per function (best reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    print(f"{args.n} maps of {args.size}x{args.size}; kernels on {device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} CPU threads); references: NumPy per image on CPU")
    print(f"{'metric':<26}{'batched maps/s':>15}{'per-image maps/s':>18}{'speed-up':>10}")
    for r in measure(args.n, args.size, args.repeat, device):
        print(f"{r['metric']:<26}{r['kernel']:>15.0f}{r['reference']:>18.0f}{r['kernel'] / r['reference']:>9.1f}x")


if __name__ == "__main__":
    main()
