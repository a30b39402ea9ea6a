"""Command line: ``python -m sparsevis <command>`` (or the ``sparsevis`` script)."""
from __future__ import annotations

import argparse
import math
import sys

from sparsevis import book, distributed, plan, selfcheck, studies
from sparsevis.config import PROFILES, STAGES, TRACKS, get_profile
from sparsevis.data import mvh
from sparsevis.importer import import_checkpoints, imported_run
from sparsevis.runner import TrainingRequired, run_prune
from sparsevis.runtime import default_jobs, run_parallel
from sparsevis.weights import ensure_mobilenet_v2


def _profiles_help() -> str:
    return "\n".join(f"  {name:<6} {p.description}" for name, p in PROFILES.items())


def _runs(profile: str, track: str | None, arch: str | None):
    runs = [r for r in get_profile(profile).runs
            if (track is None or r.track == track) and (arch is None or r.arch.endswith(arch))]
    if not runs:
        raise SystemExit(f"no run of profile {profile!r} matches track={track!r} arch={arch!r}")
    return runs


def cmd_prune(args) -> None:
    runs = _runs(args.profile, args.track, args.arch)
    # under torchrun: one process per GPU joined into one process group (a no-op otherwise)
    with distributed.session(device=args.device):
        if distributed.is_main():
            print(plan.plan(get_profile(args.profile), runs=runs, gpus=distributed.world_size()),
                  flush=True)
        # under DDP every process works on the same run; otherwise independent runs share the cores
        if distributed.world_size() > 1:
            jobs = 1
        else:
            jobs = default_jobs(len(runs), args.device) if args.jobs is None else args.jobs

        def report(i, out):
            if distributed.is_main():
                print(f"[sparsevis] prune {runs[i].label}: {out}", flush=True)

        run_parallel(run_prune, [(run, args.device, None, args.strict, args.retrain) for run in runs], jobs,
                     on_result=report)


def cmd_study(args) -> None:
    if args.checkpoints:
        run = imported_run(args.checkpoints)
        out = studies.run_study(args.stage, run, args.profile, args.device, args.strict)
        print(f"[sparsevis] {args.stage} {run.label}: {out}", flush=True)
        return
    runs = _runs(args.profile, args.track, args.arch)
    jobs = default_jobs(len(runs), args.device) if args.jobs is None else args.jobs
    run_parallel(studies.run_study, [(args.stage, run, args.profile, args.device, args.strict) for run in runs], jobs,
                 on_result=lambda i, out: print(f"[sparsevis] {args.stage} {runs[i].label}: {out}", flush=True))


def cmd_book(args) -> None:
    try:
        book.build(args.profile, device=args.device, execute_only=args.execute_only, jobs=args.jobs)
    except book.BookError as e:
        raise SystemExit(f"sparsevis: error: {e}")


def cmd_plan(args) -> None:
    print(plan.plan(get_profile(args.profile), gpu=args.gpu, gpus=args.gpus,
                     cores_per_gpu=args.cores_per_gpu, decode_images_per_s=args.decode_rate))


def _images_per_s(text: str) -> float:
    """A measured rate in images/s: a finite number > 0 (argparse names the flag on an error)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate; expected images/s per core, a number > 0 "
                                         "(e.g. 180)")
    return value


def cmd_import_checkpoints(args) -> None:
    out = import_checkpoints(args.directory, args.arch, label=args.label, track=args.track, preset=args.preset,
                             num_classes=args.num_classes)
    print(f"[sparsevis] imported series: {out}\n  use it with notebook parameter checkpoints={out.name!r} "
          f"or `python -m sparsevis study <stage> --checkpoints {out}`", flush=True)


def cmd_selfcheck(args) -> None:
    report = selfcheck.run(device=args.device, out=args.out)
    for c in report["checks"]:
        print(f"[sparsevis] selfcheck {c['name']}: {c['status']}" + (f" ({c['reason']})" if c.get("reason") else ""),
              flush=True)
    if not report["ok"]:
        raise SystemExit(f"sparsevis: error: a self-check failed; see {args.out}")


def cmd_fetch_weights(args) -> None:
    print(f"[sparsevis] MobileNetV2 ImageNet weights: {ensure_mobilenet_v2()}")


def cmd_fetch_data(args) -> None:
    for name in args.datasets:
        print(f"[sparsevis] {name}: {mvh.fetch(name)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sparsevis",
        description="What pruning does to a vision model's interpretability, object discovery "
                    "and alignment with human perception.",
        epilog=f"profiles:\n{_profiles_help()}\n\nstages: {', '.join(STAGES)}\n"
               f"tracks: {', '.join(TRACKS)}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def common(p, track=True):
        p.add_argument("--profile", default="demo", choices=tuple(PROFILES),
                       help="tiny (tests), demo (the embedded default), paper (GPUs)")
        if track:
            p.add_argument("--track", choices=TRACKS, help="only runs of this track")
            p.add_argument("--arch", help="only runs whose architecture name ends with this")
        p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N'")

    def jobs(p):
        p.add_argument("--jobs", type=int, help="worker processes for independent runs "
                                                "(default: one per CPU core on the CPU, 1 on a GPU)")

    def strict(p):
        p.add_argument("--strict", action="store_true",
                       help="refuse checkpoints made by another code version (default: use them, with a warning)")

    p = sub.add_parser("prune", help="stage 1: train dense, prune iteratively, retrain (LRR)")
    common(p)
    jobs(p)
    strict(p)
    p.add_argument("--retrain", action="store_true",
                   help="train anew; existing checkpoints are kept under <run>.superseded-<time>")
    p.set_defaults(func=cmd_prune)
    p = sub.add_parser("study", help="stages 2-4: interpretability, discovery or alignment")
    p.add_argument("stage", choices=("interpretability", "discovery", "alignment"))
    common(p)
    jobs(p)
    strict(p)
    p.add_argument("--checkpoints", help="an imported series (its folder or label) instead of the profile's runs")
    p.set_defaults(func=cmd_study)
    p = sub.add_parser("book", help="run every stage and notebook, then build the Jupyter Book")
    common(p, track=False)
    jobs(p)
    p.add_argument("--execute-only", action="store_true", help="run the notebooks, skip the HTML build")
    p.set_defaults(func=cmd_book)
    p = sub.add_parser("plan", help="print the planned work and an estimate of GPU-hours")
    common(p, track=False)
    p.add_argument("--gpu", default="a100", choices=("a100", "h100", "rtx3090"),
                   help="GPU class of the estimate (default a100)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs for the wall-clock estimate (default 8)")
    p.add_argument("--cores-per-gpu", type=int, default=12,
                   help="CPU cores feeding each GPU's data loader (default 12)")
    p.add_argument("--decode-rate", type=_images_per_s, metavar="IMAGES_PER_S",
                   help="your measured JPEG decode + augmentation rate of one CPU core (one DataLoader "
                        f"worker), images/s (default: an assumed {plan.DECODE_IMAGES_PER_S_PER_WORKER})")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("import-checkpoints", help="register a folder of state dicts (one per sparsity) as a series")
    p.add_argument("directory", help="folder of .pt/.pth state dicts (torchvision/timm format, or sparsevis checkpoints)")
    p.add_argument("--arch", required=True, help="model name, e.g. torchvision/resnet50 or timm/vit_small_patch16_224")
    p.add_argument("--label", help="the series' name in legends (default: the folder's name)")
    p.add_argument("--track", default="real", choices=TRACKS, help="whose evaluation images the studies use")
    p.add_argument("--preset", default="all", help="prunable set the sparsity is read over (default all)")
    p.add_argument("--num-classes", type=int, help="classifier size when it is not the architecture's default")
    p.set_defaults(func=cmd_import_checkpoints)
    p = sub.add_parser("selfcheck", help="check a device against the CPU (minutes); writes a JSON report")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N'")
    p.add_argument("--out", default="selfcheck.json", help="the report's path")
    p.set_defaults(func=cmd_selfcheck)
    p = sub.add_parser("fetch-weights", help="place torchvision's MobileNetV2 ImageNet checkpoint in torch's cache")
    p.set_defaults(func=cmd_fetch_weights)
    p = sub.add_parser("fetch-data", help="download model-vs-human datasets into $SPARSEVIS_DATA_DIR (online)")
    p.add_argument("datasets", nargs="+")
    p.set_defaults(func=cmd_fetch_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TrainingRequired) as e:
        print(f"sparsevis: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # e.g. a read-only run store: the file and the reason, not a traceback
        print(f"sparsevis: error: {e.strerror or e}: {e.filename or ''} (check that the run store "
              f"$SPARSEVIS_RUNS_DIR is writable)", file=sys.stderr)
        return 2
    return 0
