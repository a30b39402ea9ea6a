"""Throughput of the batched feature-extraction path (sparsevis.features.extract).

    python benchmarks/bench_features.py                      # CPU rows; GPU rows when CUDA is there
    python benchmarks/bench_features.py --cpu-n 32 --gpu-n 4096 --compile

CPU, per model (ResNet-50 and ViT-B/16 from timm, random weights, 224 px, fp32):

* ``per-image loop``: ``model(x[i:i+1])`` for every image under ``torch.no_grad()`` (how a
  study loop without batching runs);
* ``plain batched loop``: ``model(x[i:i+b])`` over a tensor, the model's pure forward rate;
* ``features.extract``: the library path over a Dataset of (image, label) pairs (DataLoader,
  inference mode, channels-last for the CNN, outputs gathered); its logits are checked against
  the plain loop's (``max|diff|``: zero for the ViT, float rounding for the channels-last CNN).

GPU (when CUDA is available), per model: the pure forward rate on a synthetic batch already on
the GPU (bf16 autocast, channels-last for the CNN, inference mode: the ceiling), and
``features.extract`` from CPU memory (a float32 tensor: batches pinned by the DataLoader's
pin-memory thread, non-blocking copies, logits back to the host; JPEG decoding is not part of
it), with its
fraction of the ceiling; ``--compile`` adds torch.compile rows.

Rates are images/s: the best of ``--repeat`` passes after one warm-up pass, the paths compared
timed side by side (benchmarks/bench_common.py).
"""
from __future__ import annotations

import argparse

import torch

from bench_common import side_by_side
from sparsevis import features, models

MODELS = ("timm/resnet50", "timm/vit_base_patch16_224")


def bench_cpu(name: str, n: int, batch: int, repeat: int, size: int = 224) -> dict:
    """Images/s on the CPU of the per-image loop, the plain batched forward loop and
    ``features.extract``, side by side; ``diff`` is max|extract - plain| over the logits."""
    torch.manual_seed(0)
    model = models.create(name).eval()
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    ds = torch.utils.data.TensorDataset(x, torch.zeros(n, dtype=torch.long))

    def per_image():
        with torch.no_grad():
            for i in range(n):
                model(x[i:i + 1])

    def plain():
        with torch.no_grad():
            return torch.cat([model(x[i:i + batch]) for i in range(0, n, batch)])

    def path():
        return features.extract(model, ds, device="cpu", batch_size=batch, progress=False)

    diff = float((plain() - path()).abs().max())
    t = side_by_side({"per-image": per_image, "plain": plain, "extract": path}, repeat)
    return dict(model=name, n=n, diff=diff, **{k: n / v for k, v in t.items()})


def bench_gpu(name: str, n: int, batch: int, repeat: int, compile: bool) -> list[dict]:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = models.create(name).to(device).eval()
    cnn = features.is_cnn(model)
    rows = []
    for compiled in ((False, True) if compile else (False,)):
        if compiled:
            model.compile(dynamic=False)
        synthetic = torch.randn(batch, 3, 224, 224, device=device)
        if cnn:
            model.to(memory_format=torch.channels_last)
            synthetic = synthetic.contiguous(memory_format=torch.channels_last)
        steps = max(1, n // batch)

        def pure():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                for _ in range(steps):
                    model(synthetic)

        # one after the other (the pure loop needs the model channels-last, extract converts it
        # itself): a GPU is not shared the way a loaded CPU is
        pure_ips = steps * batch / side_by_side({"pure": pure}, repeat, device)["pure"]
        if cnn:
            model.to(memory_format=torch.contiguous_format)
        host = torch.randn(steps * batch, 3, 224, 224)

        def path():
            features.extract(model, host, device=device, batch_size=batch, progress=False)

        path_ips = len(host) / side_by_side({"extract": path}, repeat, device)["extract"]
        rows.append(dict(model=name + (" +compile" if compiled else ""), pure=pure_ips,
                         extract=path_ips, fraction=path_ips / pure_ips))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--cpu-n", type=int, default=16, help="images per CPU pass")
    parser.add_argument("--cpu-batch", type=int, default=8)
    parser.add_argument("--gpu-n", type=int, default=4096, help="images per GPU pass")
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (best reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the GPU")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if not args.skip_cpu:
        print(f"CPU: torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, 224 px, "
              f"{args.cpu_n} images, batch {args.cpu_batch}, best of {args.repeat}")
        print(f"{'model':<28}{'per-image img/s':>16}{'plain batched':>15}{'extract':>10}"
              f"{'extract/plain':>15}{'extract/per-image':>19}{'max|diff|':>11}")
        for name in args.models:
            r = bench_cpu(name, args.cpu_n, args.cpu_batch, args.repeat)
            print(f"{name:<28}{r['per-image']:>16.2f}{r['plain']:>15.2f}{r['extract']:>10.2f}"
                  f"{r['extract'] / r['plain']:>15.2f}{r['extract'] / r['per-image']:>19.2f}{r['diff']:>11.1e}")

    print()
    if not torch.cuda.is_available():
        print("GPU: no CUDA device here, GPU rows not measured. (Run this script on a GPU machine "
              "for the bf16 + channels-last rates and the fraction of pure forward throughput.)")
        return
    print(f"GPU: {torch.cuda.get_device_name()}, bf16 autocast, channels-last for CNNs, inference mode, "
          f"{args.gpu_n} images, batch {args.gpu_batch}, best of {args.repeat}")
    print(f"{'model':<38}{'pure forward img/s':>19}{'extract img/s':>15}{'fraction':>10}")
    for name in args.models:
        for r in bench_gpu(name, args.gpu_n, args.gpu_batch, args.repeat, args.compile):
            print(f"{r['model']:<38}{r['pure']:>19.0f}{r['extract']:>15.0f}{r['fraction']:>10.2f}")


if __name__ == "__main__":
    main()
