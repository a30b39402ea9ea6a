"""Every stage's throughput as a fraction of the loop it cannot beat, in one run, as one table.

    python benchmarks/run_all.py [--tiny] [--out DIR] [--repeat R] [--threads T]

Rows (each ``path`` rate over its ``bound`` rate, both measured side by side in this run):

* prune stage: ``train.train`` vs a pure fwd + bwd + optimizer-step loop (bench_stages.py);
* study stages: ``features.extract`` vs a pure batched forward loop (bench_features.py) and
  Grad-CAM, Guided Grad-CAM and IG-SmoothGrad vs a pure forward + backward loop (bench_stages.py);
* kernels: the relevance-map metrics and LOST vs their per-image references (a speed-up, may
  exceed 1; bench_metrics.py, bench_lost.py); LOST vs the SYRK roof (the Gram products alone)
  and vs the GEMM roof; the metrics vs the memory-bandwidth roof (one read of their inputs).

The roofs are measured here: a large fp32 matmul (FLOP/s) and a large fp32 copy (bytes read +
written per second). Writes ``latest.md`` and ``latest.json`` (the rows and the machine: CPU,
cores, torch threads, versions, load average) to ``--out``, by default to ``book/benchmarks/``,
whose table book/reproduce.md includes (commit it after a run). On a loaded machine
the rates move; the ratios, taken side by side, much less.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

import bench_features  # noqa: E402
import bench_lost  # noqa: E402
import bench_metrics  # noqa: E402
import bench_stages  # noqa: E402
from bench_common import machine, roof_functions, side_by_side  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    stage_arch: str = "timm/sv_resnet_s"
    stage_size: int = 64
    train_n: int = 512
    train_batch: int = 128
    extract_n: int = 512
    extract_batch: int = 128
    cam_n: int = 128
    cam_batch: int = 16
    metric_n: int = 256
    metric_size: int = 224
    lost_batch: int = 16
    lost_grid: tuple[int, int] = (30, 23)
    lost_dims: tuple[int, ...] = (384, 2048)
    gemm_n: int = 2048
    copy_bytes: int = 256 * 2**20
    repeat: int = 5


TINY = Sizes(stage_size=32, train_n=16, train_batch=8, extract_n=16, extract_batch=8, cam_n=8, cam_batch=4,
             metric_n=8, metric_size=32, lost_batch=2, lost_grid=(8, 6), lost_dims=(32,),
             gemm_n=256, copy_bytes=8 * 2**20, repeat=1)

COLUMNS = ("group", "path", "bound", "unit", "path_rate", "bound_rate", "ratio", "setting")


def _row(group, path, bound, unit, path_rate, bound_rate, setting) -> dict:
    return dict(group=group, path=path, bound=bound, unit=unit, path_rate=float(path_rate),
                bound_rate=float(bound_rate), ratio=float(path_rate) / float(bound_rate), setting=setting)


def measure_roofs(s: Sizes) -> dict:
    """GEMM FLOP/s and copy bytes/s, side by side."""
    fns, work = roof_functions(s.gemm_n, s.copy_bytes)
    t = side_by_side(fns, s.repeat)
    return {"gemm_flops": work["gemm"] / t["gemm"], "copy_bytes": work["copy"] / t["copy"]}


def collect(s: Sizes) -> tuple[list[dict], dict]:
    """All rows, and the roofs they were compared with."""
    roofs = measure_roofs(s)
    rows = []
    stage = f"{s.stage_arch}, {s.stage_size} px"
    r = bench_stages.bench_train(s.stage_arch, s.train_n, s.train_batch, s.repeat, s.stage_size)
    rows.append(_row("prune stage", "train.train (50 % pruned, 1 epoch)", "fwd+bwd+step loop", "img/s",
                     r["train"], r["pure"], f"{stage}, {s.train_n} images, batch {s.train_batch}"))
    r = bench_features.bench_cpu(s.stage_arch, s.extract_n, s.extract_batch, s.repeat, s.stage_size)
    setting = f"{stage}, {s.extract_n} images, batch {s.extract_batch}"
    rows.append(_row("study stage", "features.extract", "forward loop", "img/s", r["extract"], r["plain"], setting))
    r = bench_stages.bench_gradcam(s.stage_arch, s.cam_n, s.cam_batch, s.repeat, s.stage_size)
    rows.append(_row("study stage", "attribution gradcam", "fwd+bwd loop", "img/s", r["gradcam"], r["pure"],
                     f"{stage}, {s.cam_n} images, batch {s.cam_batch}"))
    r = bench_stages.bench_guided(s.stage_arch, s.cam_n, s.cam_batch, s.repeat, s.stage_size)
    rows.append(_row("study stage", "attribution guided_gradcam", "fwd+bwd loop", "img/s", r["guided"], r["pure"],
                     f"{stage}, {s.cam_n} images, batch {s.cam_batch}"))
    r = bench_stages.bench_ig(s.stage_arch, s.cam_n, s.cam_batch, s.repeat, s.stage_size)
    rows.append(_row("study stage", f"attribution ig_smoothgrad ({r['n_steps']} steps, 2 samples)", "fwd+bwd loop",
                     "img/s", r["ig"], r["pure"], f"{stage}, {s.cam_n} images, batch {s.cam_batch}"))
    for r in bench_metrics.measure(s.metric_n, s.metric_size, s.repeat, "cpu"):
        setting = f"{r['n']} maps of {r['size']} px"
        rows.append(_row("kernel", r["metric"], "per-image reference", "maps/s", r["kernel"], r["reference"], setting))
        rows.append(_row("kernel", r["metric"], "bandwidth roof (one read of what it needs)", "GB/s",
                         r["kernel"] * r["bytes"] / r["n"] / 1e9, roofs["copy_bytes"] / 1e9, setting))
    h, w = s.lost_grid
    for dim in s.lost_dims:
        r = bench_lost.measure(s.lost_batch, (h, w), dim, repeat=s.repeat)
        setting = f"{s.lost_batch} images, grid {h}x{w} (N={h * w}), D={dim}, boxes equal: {r['same']:.0%}"
        rows.append(_row("kernel", "lost", "per-image reference", "img/s", r["lost"], r["reference"], setting))
        rows.append(_row("kernel", "lost", "SYRK roof (Gram products alone)", "img/s", r["lost"], r["syrk"], setting))
        rows.append(_row("kernel", "lost", "GEMM roof (SYRK FLOPs)", "GFLOP/s", r["lost"] * r["flops"] / 1e9,
                         roofs["gemm_flops"] / 1e9, setting))
    return rows, roofs


def _load(avg) -> str:
    return "unknown" if avg is None else " / ".join(f"{x:.1f}" for x in avg) + " (1 / 5 / 15 min)"


def markdown(rows: list[dict], roofs: dict, info: dict, seconds: float, repeat: int) -> str:
    """The table with the machine it ran on, without a heading: the reproduce page includes it."""
    lines = [(f"Measured {info['when']} (profile `{info['profile']}`, `python benchmarks/run_all.py`) on "
              f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads "
              f"(the CPU metric kernels and LOST's torch steps run on one by design); torch {info['torch']}, "
              f"numpy {info['numpy']}, Python {info['python']}; GPU: {info['cuda'] or 'none'}; "
              f"load average at the start {_load(info['load_average'])}."), "",
             (f"Roofs measured in this run: GEMM {roofs['gemm_flops'] / 1e9:.1f} GFLOP/s (fp32 matmul), "
              f"copy {roofs['copy_bytes'] / 1e9:.1f} GB/s (read + write). Ratio = path / bound, both timed "
              f"side by side, best of {repeat} rounds each: on a machine shared with other work the rates "
              f"move, their ratios much less. {seconds:.0f} s in all."), "",
             "| group | path | bound | unit | path rate | bound rate | ratio | setting |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['path']} | {r['bound']} | {r['unit']} | {r['path_rate']:.3g} | "
                     f"{r['bound_rate']:.3g} | {r['ratio']:.3g} | {r['setting']} |")
    return "\n".join(lines) + "\n"


#: Where the default run writes the table that book/reproduce.md includes (committed).
PAGE_TABLE = Path(__file__).resolve().parents[1] / "book" / "benchmarks"


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes: under a minute (the test runs this)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for latest.md and latest.json (default: {PAGE_TABLE}, the table the "
                        "reproduce page shows; with --tiny, _build/benchmarks-tiny)")
    p.add_argument("--repeat", type=int, default=None, help="rounds per comparison (the best is kept)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = TINY if a.tiny else Sizes()
    if a.repeat:
        sizes = replace(sizes, repeat=a.repeat)
    out = a.out or (Path("_build") / "benchmarks-tiny" if a.tiny else PAGE_TABLE)
    info = dict(machine(), when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                profile="tiny" if a.tiny else "default")
    t = time.time()
    rows, roofs = collect(sizes)
    seconds = time.time() - t
    bad = [r for r in rows if not (math.isfinite(r["ratio"]) and r["ratio"] > 0)]
    if bad:
        raise RuntimeError(f"benchmark ratios not finite and positive: {bad}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(
        {"machine": info, "sizes": asdict(sizes), "roofs": roofs, "seconds": seconds, "rows": rows},
        indent=1) + "\n")
    text = markdown(rows, roofs, info, seconds, sizes.repeat)
    (out / "latest.md").write_text(text)
    print(text)
    return out


if __name__ == "__main__":
    main()
