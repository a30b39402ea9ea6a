"""Two-process DDP on the CPU (gloo): the same masks and weights on every rank.

Each rank builds the same seeded tiny model, prunes it with SNIP on a batch of its own (so the
saliencies differ per rank before the all-reduce), trains it with ``sparsevis.train.train``
(DDP, each rank on its shard), prunes further by global magnitude and retrains (one LRR step),
then writes what it holds. The test checks that the masks match across ranks and equal a
single-process SNIP over both ranks' batches, that pruned weights are still zero, and that
the parameters (and, after ``broadcast_buffers``, the buffers) are identical on both ranks.
"""
from __future__ import annotations

import copy
import os
import socket
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

WORLD = 2
SNIP_SPARSITY, IMP_SPARSITY = 0.5, 0.75


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snip_masks(model, batches):
    from sparsevis import prune

    m = copy.deepcopy(model)
    prune.snip(m, batches, SNIP_SPARSITY, verbose=False)
    return {k: v.clone() for k, v in prune.mask_state(m).items()}


def _worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    from sparsevis import distributed, models, prune
    from sparsevis.config import TrainConfig
    from sparsevis.data import synthscenes as ss
    from sparsevis.train import TensorData, train

    data = torch.load(os.path.join(tmp, "data.pt"), weights_only=True)
    images, labels = data["images"], data["labels"]
    torch.manual_seed(0)
    # zero_init_last=False: with timm's zero-initialised last BN of each block, every block conv
    # has zero SNIP saliency and the masks would not depend on the data at all
    model = models.create("timm/sv_resnet_s", num_classes=10, zero_init_last=False)
    # SNIP batches: rank r sees images [8r, 8r+8) only
    batches = [(ss.normalize(images[8 * r:8 * r + 8]), labels[8 * r:8 * r + 8]) for r in range(WORLD)]
    out = {"local_snip": _snip_masks(model, [batches[rank]])}      # before the group exists
    if rank == 0:
        out["reference_snip"] = _snip_masks(model, batches)          # one process, both batches

    info = distributed.init_from_env(device="cpu")
    assert (info.rank, info.world_size, info.backend) == (rank, WORLD, "gloo")
    prune.snip(model, [batches[rank]], SNIP_SPARSITY, verbose=False)
    out["snip"] = {k: v.clone() for k, v in prune.mask_state(model).items()}

    ddp_kwargs = []   # what train() asks of DDP (masks are buffers: no per-step broadcast)
    real_ddp = torch.nn.parallel.DistributedDataParallel

    def spy_ddp(module, *args, **kwargs):
        ddp_kwargs.append(kwargs.get("broadcast_buffers", True))
        return real_ddp(module, *args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = spy_ddp
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=8, warmup_epochs=0, amp=False)
    train_data = TensorData(images, labels, ss.normalize)
    cpu = torch.device("cpu")
    train(model, train_data, cfg, seed=0, device=cpu, state_path=os.path.join(tmp, "it0.state.pt"))
    prune.global_magnitude(model, IMP_SPARSITY, verbose=False)
    train(model, train_data, cfg, seed=1, device=cpu, state_path=os.path.join(tmp, "it1.state.pt"))

    out["masks"] = prune.mask_state(model)
    out["params"] = {k: v.detach().clone() for k, v in model.named_parameters()}
    out["sparsity"] = prune.sparsity(model)
    out["params_all_equal"] = all(distributed.all_equal(p) for p in model.parameters())
    out["ddp_broadcast_buffers"] = ddp_kwargs
    # BatchNorm statistics agree after train() itself (averaged over the ranks each epoch)
    out["buffers_equal_after_train"] = all(distributed.all_equal(b) for b in model.buffers())
    distributed.broadcast_buffers(model)
    out["buffers_all_equal"] = all(distributed.all_equal(b) for b in model.buffers())
    out["buffers"] = {k: v.clone() for k, v in model.named_buffers()}
    torch.save(out, os.path.join(tmp, f"rank{rank}.pt"))
    distributed.teardown()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    from sparsevis.data import synthscenes as ss

    tmp = tmp_path_factory.mktemp("ddp")
    batch = ss.make_split("train", 48, seed=0, size=32)
    torch.save({"images": batch.images, "labels": batch.labels}, tmp / "data.pt")
    ctx = mp.start_processes(_worker, args=(_free_port(), str(tmp)), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish in 180 s")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_snip_saliencies_are_reduced_over_ranks(ranks):
    r0, r1 = ranks
    # each rank alone would prune differently: the test data makes the all-reduce matter
    assert not _equal(r0["local_snip"], r1["local_snip"])
    # under DDP both ranks get the masks of one process that saw both batches
    assert _equal(r0["snip"], r1["snip"])
    assert _equal(r0["snip"], r0["reference_snip"])


def test_masks_and_weights_identical_across_ranks(ranks):
    r0, r1 = ranks
    assert _equal(r0["masks"], r1["masks"]) and len(r0["masks"]) > 0
    assert r0["sparsity"] == r1["sparsity"] == pytest.approx(IMP_SPARSITY, abs=1e-3)
    assert _equal(r0["params"], r1["params"])
    assert r0["params_all_equal"] and r1["params_all_equal"]
    assert r0["buffers_all_equal"] and _equal(r0["buffers"], r1["buffers"])


def test_training_does_not_broadcast_buffers_each_step(ranks):
    for r in ranks:
        assert r["ddp_broadcast_buffers"] == [False, False]   # one DDP wrapper per train() call
        assert r["buffers_equal_after_train"]


def _fake_torchrun(monkeypatch, local_rank: int, gpus: int = 4):
    """torchrun's environment for rank `local_rank` of 2 and a CUDA machine, on the CPU: the
    process group calls are recorded, not made."""
    import torch.distributed as dist

    from sparsevis import distributed

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("set_device", i))
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.setdefault("init", kw["backend"]))
    monkeypatch.setattr(distributed, "is_initialized", lambda: "init" in calls)
    monkeypatch.setattr(dist, "get_rank", lambda: local_rank)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: calls["init"])
    return calls


def test_each_rank_computes_on_its_local_gpu(monkeypatch):
    from sparsevis import distributed

    calls = _fake_torchrun(monkeypatch, local_rank=1)
    info = distributed.init_from_env(device="cuda")
    assert calls["set_device"] == 1 and info.device == torch.device("cuda", 1)
    assert distributed.process_device("cuda") == torch.device("cuda", 1)
    assert distributed.process_device("auto") == torch.device("cuda", 1)
    assert distributed.process_device("cuda:1") == torch.device("cuda", 1)   # it is this rank's GPU
    assert distributed.process_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='cuda:0'.*LOCAL_RANK.*CUDA_VISIBLE_DEVICES"):
        distributed.process_device("cuda:0")


def test_explicit_gpu_of_another_rank_is_refused_before_the_group_starts(monkeypatch):
    from sparsevis import distributed

    calls = _fake_torchrun(monkeypatch, local_rank=1)
    with pytest.raises(ValueError, match=r"device='cuda:3' under torchrun \(WORLD_SIZE=2\).*cuda:1"):
        distributed.init_from_env(device="cuda:3")
    assert "init" not in calls and "set_device" not in calls


def test_pruned_weights_stay_zero_after_training(ranks):
    for r in ranks:
        for name, mask in r["masks"].items():
            w = r["params"][name]
            assert torch.count_nonzero(w[~mask]) == 0, name
            assert torch.count_nonzero(w[mask]) >= 0.9 * int(mask.sum()), name  # the rest trained
        # magnitude pruning after SNIP is cumulative: every SNIP-pruned weight stays pruned
        for name, snip_mask in r["snip"].items():
            assert not (r["masks"][name] & ~snip_mask).any(), name


def _cli_starts_process_group() -> bool:
    import inspect

    from sparsevis import cli

    return "distributed" in inspect.getsource(cli.cmd_prune)


@pytest.mark.slow
@pytest.mark.skipif(not _cli_starts_process_group(),
                    reason="cli.cmd_prune does not start the process group yet "
                           "(it should run inside sparsevis.distributed.session())")
def test_torchrun_prune_cli(tmp_path):
    """``torchrun -m sparsevis prune`` with two CPU processes: one run, written once, evaluated
    on the whole test split, with the same checkpoints after a resume."""
    import subprocess

    from sparsevis import prune

    env = {**os.environ, "SPARSEVIS_RUNS_DIR": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sparsevis", "prune", "--profile", "tiny", "--track", "synthetic",
           "--arch", "sv_resnet_s", "--device", "cpu"]
    done = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("[sparsevis] prune synthetic-sv_resnet_s") == 1  # rank 0 reports
    (out,) = (tmp_path / "runs" / "prune").iterdir()
    assert (out / "DONE").exists()
    ckpts = sorted(out.glob("iter-*.pt"))
    assert len(ckpts) == 3
    metas = [prune.read(c)["meta"] for c in ckpts]
    assert all(m["accuracy_n"] == 128 for m in metas)  # the whole clean split, not one rank's half
    assert [m["parent"] for m in metas[1:]] == [prune.read(c)["sha256"] for c in ckpts[:-1]]
