"""Throughput of LOST (sparsevis.discovery.lost) vs the per-image reference loop and the SYRK roof.

The reference is tests/reference_lost.py: NumPy algebra + scipy.ndimage.label, one image at a
time, always on the CPU. The roof is the similarity matrices ``f @ f.T`` alone, per image with
NumPy (a SYRK: N (N+1) / 2 x D multiply-adds) into one reused buffer (a fresh array per image
adds page faults worth half the product at VOC's grid), the one O(N^2 D) step; the rest of
LOST is O(N^2) per image. The batched ``bmm`` of the same products (a GEMM, twice the FLOPs)
is timed too: what LOST uses on a GPU. All run side by side in one process
(benchmarks/bench_common.py), best of the repeats reported.

    python benchmarks/bench_lost.py --device cpu --batch 64 --grid 30 23 --dim 384 2048 --repeat 5

On a busy machine torch's OpenMP threads can stall on every small op (waiting for a core);
``--threads 1`` with ``OPENBLAS_NUM_THREADS=1`` compares both sides single-threaded.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_common import side_by_side  # noqa: E402
from reference_lost import reference_lost  # noqa: E402

from sparsevis.discovery import lost  # noqa: E402


def make_features(batch: int, h: int, w: int, dim: int, kind: str, seed: int) -> torch.Tensor:
    """float32 (batch, h*w, dim). "structured": a shared background direction plus noise with
    one or two rectangular objects of their own direction (LOST-like scenes); "gaussian":
    i.i.d. N(0, 1) (fragmented masks, the hardest case for the flood fill)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(batch, h * w, dim, generator=g)
    out = torch.empty(batch, h, w, dim)
    for i in range(batch):
        base = torch.randn(dim, generator=g)
        f = base + 0.5 * torch.randn(h, w, dim, generator=g)
        for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
            y1 = int(torch.randint(0, h - 1, (1,), generator=g))
            x1 = int(torch.randint(0, w - 1, (1,), generator=g))
            y2 = int(torch.randint(y1 + 1, min(h, y1 + h // 2) + 1, (1,), generator=g))
            x2 = int(torch.randint(x1 + 1, min(w, x1 + w // 2) + 1, (1,), generator=g))
            f[y1:y2, x1:x2] += 2 * torch.randn(dim, generator=g) - base
        out[i] = f
    return out.reshape(batch, h * w, dim)


def syrk_flops(n: int, dim: int) -> float:
    """FLOPs of one image's ``f @ f.T`` as a SYRK: one triangle, N (N + 1) / 2 x D multiply-adds."""
    return float(n * (n + 1) * dim)


def measure(batch: int, grid, dim: int, k: int = 100, kind: str = "structured", repeat: int = 5,
            device: str = "cpu", seed: int = 0) -> dict:
    """Images/s of batched LOST, the per-image reference, the per-image SYRK (the roof) and
    the batched bmm, side by side; ``same`` is the fraction of images with identical boxes."""
    h, w = grid
    feats = make_features(batch, h, w, dim, kind, seed)
    feats_np = feats.numpy()
    feats_dev = feats.to(device)
    gram = np.empty((h * w, h * w), dtype=feats_np.dtype)
    same = float((lost(feats_dev, (h, w), k=k).cpu().numpy() == reference_lost(feats_np, (h, w), k=k))
                 .all(axis=1).mean())
    t = side_by_side({
        "lost": lambda: lost(feats_dev, (h, w), k=k),
        "reference": lambda: reference_lost(feats_np, (h, w), k=k),
        "syrk": lambda: [np.matmul(f, f.T, out=gram) for f in feats_np],
        "bmm": lambda: torch.bmm(feats_dev, feats_dev.transpose(1, 2)),
    }, repeat, device)
    return dict(dim=dim, n=h * w, batch=batch, same=same, flops=syrk_flops(h * w, dim),
                **{name: batch / s for name, s in t.items()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="device for batched LOST (the reference is CPU)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--grid", type=int, nargs=2, default=(30, 23), metavar=("H", "W"),
                   help="patch grid (VOC at stride 16: about 30 x 23)")
    p.add_argument("--dim", type=int, nargs="+", default=[384, 2048],
                   help="feature sizes (ViT-S keys: 384; ResNet-50: 2048)")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--features", choices=("structured", "gaussian"), default="structured")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    h, w = a.grid
    print(f"torch {torch.__version__}, numpy {np.__version__}; device={device}; "
          f"torch threads={torch.get_num_threads()}, cpu_count={os.cpu_count()}")
    print(f"batch={a.batch} grid={h}x{w} (N={h * w}) k={a.k} features={a.features} repeat={a.repeat}")
    print()
    print("img/s: best of the repeats, all four timed side by side")
    print(f"{'dim':>5} {'LOST img/s':>11} {'reference img/s':>16} {'LOST/ref':>9} {'SYRK img/s':>11} "
          f"{'LOST/SYRK':>10} {'bmm img/s':>10} {'same boxes':>11}")
    for dim in a.dim:
        r = measure(a.batch, (h, w), dim, a.k, a.features, a.repeat, a.device, a.seed)
        print(f"{dim:>5} {r['lost']:>11.1f} {r['reference']:>16.1f} {r['lost'] / r['reference']:>8.2f}x "
              f"{r['syrk']:>11.1f} {r['lost'] / r['syrk']:>10.2f} {r['bmm']:>10.1f} {r['same']:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
