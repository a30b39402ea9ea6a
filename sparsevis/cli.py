"""Command line: ``python -m sparsevis <command>`` (or the ``sparsevis`` script)."""
from __future__ import annotations

import argparse
import sys

from sparsevis.config import PROFILES, STAGES, TRACKS, get_profile
from sparsevis.runner import TrainingRequired


def _profiles_help() -> str:
    return "\n".join(f"  {name:<6} {p.description}" for name, p in PROFILES.items())


def _runs(profile: str, track: str | None, arch: str | None):
    runs = [r for r in get_profile(profile).runs
            if (track is None or r.track == track) and (arch is None or r.arch.endswith(arch))]
    if not runs:
        raise SystemExit(f"no run of profile {profile!r} matches track={track!r} arch={arch!r}")
    return runs


def cmd_prune(args) -> None:
    from sparsevis import distributed, plan
    from sparsevis.runner import run_prune
    from sparsevis.runtime import default_jobs, run_parallel

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
    from sparsevis import studies
    from sparsevis.runtime import default_jobs, run_parallel

    runs = _runs(args.profile, args.track, args.arch)
    jobs = default_jobs(len(runs), args.device) if args.jobs is None else args.jobs
    run_parallel(studies.run_study, [(args.stage, run, args.profile, args.device, args.strict) for run in runs], jobs,
                 on_result=lambda i, out: print(f"[sparsevis] {args.stage} {runs[i].label}: {out}", flush=True))


def cmd_book(args) -> None:
    from sparsevis import book

    try:
        book.build(args.profile, device=args.device, execute_only=args.execute_only, jobs=args.jobs)
    except book.BookError as e:
        raise SystemExit(f"sparsevis: error: {e}")


def cmd_plan(args) -> None:
    from sparsevis import plan

    print(plan.plan(get_profile(args.profile), gpu=args.gpu, gpus=args.gpus,
                     cores_per_gpu=args.cores_per_gpu))


def cmd_fetch_weights(args) -> None:
    from sparsevis.weights import ensure_mobilenet_v2

    print(f"[sparsevis] MobileNetV2 ImageNet weights: {ensure_mobilenet_v2()}")


def cmd_fetch_data(args) -> None:
    from sparsevis.data import mvh

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
    p.set_defaults(func=cmd_plan)
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
    return 0
