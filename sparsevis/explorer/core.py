"""The :class:`Explorer`: one series re-pruned live, and :func:`widget`, the ipywidgets explorer
over it (the package docstring tells how)."""
from __future__ import annotations

import copy
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from sparsevis import attribution, models, prune, runner, tracks
from sparsevis.config import PruneRun
from sparsevis.discovery import boxes_to_pixels, lost, pad_to_multiple
from sparsevis.explorer import ui
from sparsevis.explorer.checkpoints import CheckpointInfo, checkpoint_info
from sparsevis.explorer.series import PRETRAINED, find_run, pretrained_weights
from sparsevis.figures import explorer as figs
from sparsevis.plotting import format_sparsity
from sparsevis.runtime import resolve_device, torch_threads
from sparsevis.store import checkpoints
from sparsevis.studies import study_params
from sparsevis.studies.discovery import patch_features

DEFAULT_METHOD = "gradcam"
PREVIEW_LADDER = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)  # preview sparsities of a series with one checkpoint


class Explorer:
    """Re-prune one series live (see the package docstring).

    profile: the profile whose runs, images and attribution parameters are used. run: a
    pretrained model (a key of :data:`PRETRAINED`, e.g. ``"torchvision/resnet50"``: its dense
    ImageNet weights, pruned one-shot, on the edge stimuli) or a prune run of the profile
    (:func:`~sparsevis.explorer.series.find_run`; None: its first run). device: where the model runs ("auto": a GPU when
    there is one). n_images: evaluation images to choose from (drawn as the studies draw theirs;
    on the synthetic and real tracks the first ``n_images`` of the studies' images, on the paper
    track a fixed seeded VOC subset of that size). prune_dir: the run's directory in the run
    store; None = run (or find cached) the prune stage (not used for a pretrained model).
    cache: checkpoints kept loaded. method_params: attribution parameters per method; None =
    what the profile's interpretability study used for this track (so the explorer shows the
    study's maps). threads: torch CPU threads during an update (restored afterwards); 1 by
    default: one image at a time gains little from more, and on a shared machine one thread is
    several times faster than torch's default (measured: MobileNetV2 Grad-CAM update 0.2 s vs.
    7 s on 2 busy cores); None = torch's setting.
    """

    def __init__(self, profile: str = "demo", run: str | PruneRun | None = None, device: str = "auto",
                 n_images: int = 8, prune_dir: str | Path | None = None, cache: int = 4,
                 method_params: dict | None = None, threads: int | None = 1):
        self.profile = profile
        self.device = resolve_device(device)
        self.threads = threads
        self.weights = None                           # a pretrained series: its Weights
        if isinstance(run, str) and run in PRETRAINED:
            self.weights = pretrained_weights(run)
            if not self.weights.available:
                raise FileNotFoundError(self.weights.note)
            self.run = PruneRun("real", run, "oneshot", levels=(0.0,), weights=self.weights.weights)
            self.label = run
            self.prune_dir = None
            self.run_id = self.weights.file.stem    # torchvision names the file by its content hash
            self.checkpoints = [CheckpointInfo(self.weights.file, 0, 0.0, self.run.preset, None)]
        else:
            self.run = find_run(profile, run)
            self.label = self.run.label
            self.prune_dir = (Path(prune_dir) if prune_dir is not None
                              else runner.ensure_series(self.run, profile, str(self.device)))
            self.checkpoints = [checkpoint_info(p, self.run.preset) for p in checkpoints(self.prune_dir)]
            if not self.checkpoints:
                raise FileNotFoundError(f"{self.prune_dir}: no checkpoints (iter-NN.pt); run the prune stage first")
            self.run_id = self.prune_dir.name.rsplit("-", 1)[-1]
        if method_params is None:
            method_params = study_params("interpretability", profile, self.run.track).get("method_params", {})
        self.method_params = {k: dict(v) for k, v in (method_params or {}).items()}
        self.track = tracks.get(self.run.track)
        self.images = self.track.study_images(self.run, n_images)
        self._models: OrderedDict[Path, torch.nn.Module] = OrderedDict()
        self._cache_size = max(1, int(cache))
        self._pruned: tuple | None = None          # (checkpoint path, n pruned) -> model
        kind = models.surface(self._checkpoint_model(self.checkpoints[0])).kind
        self.kind = kind
        self.methods = attribution.methods_for(kind)
        self.class_names = list(self.track.class_names)

    # ---------------------------------------------------------------- models
    def __len__(self) -> int:
        return int(self.images.x.shape[0])

    @property
    def sparsities(self) -> list[float]:
        """The checkpoints' realised sparsities, in iteration order."""
        return [c.sparsity for c in self.checkpoints]

    def preview_sparsities(self) -> list[float]:
        """Sparsities for a static preview: the checkpoints, the midpoints between them and one
        halfway from the last to 1; a series with one checkpoint (a pretrained model):
        :data:`PREVIEW_LADDER` from it on."""
        s = self.sparsities
        if len(s) == 1:
            return [s[0]] + [x for x in PREVIEW_LADDER if x > s[0]]
        mids = [(a + b) / 2 for a, b in zip(s, s[1:])]
        return sorted({round(x, 4) for x in s + mids + [min(0.98, s[-1] + 0.5 * (1 - s[-1]))]})

    def checkpoint_for(self, sparsity: float) -> CheckpointInfo:
        """The checkpoint with the largest sparsity at or below ``sparsity`` (within one weight)."""
        s = self._check_sparsity(sparsity)
        below = [c for c in self.checkpoints
                 if c.sparsity <= s + (0.5 / c.n_prunable if c.n_prunable else 1e-9)]
        if not below:
            return self.checkpoints[0]
        return max(below, key=lambda c: (c.sparsity, c.iteration))

    def _check_sparsity(self, sparsity) -> float:
        try:
            s = float(sparsity)
        except (TypeError, ValueError):
            s = float("nan")
        if not 0.0 <= s < 1.0:
            raise ValueError(f"sparsity={sparsity!r}: expected a number in [0, 1)")
        return s

    def _checkpoint_model(self, ckpt: CheckpointInfo) -> torch.nn.Module:
        if ckpt.path in self._models:
            self._models.move_to_end(ckpt.path)
            return self._models[ckpt.path]
        if self.weights is not None:   # from torch's cache, or downloaded (online) by torchvision
            model = models.create(self.run.arch, weights=self.run.weights)
        else:
            model = prune.load(ckpt.path)
        model = model.to(self.device).eval()
        self._models[ckpt.path] = model
        while len(self._models) > self._cache_size:
            self._models.popitem(last=False)
        return model

    def model_at(self, sparsity: float) -> tuple[torch.nn.Module, CheckpointInfo]:
        """The model at ``sparsity``: its checkpoint, pruned further (no retraining) when above it."""
        s = self._check_sparsity(sparsity)
        ckpt = self.checkpoint_for(s)
        base = self._checkpoint_model(ckpt)
        n = ckpt.n_prunable or sum(i.weight.numel() for i in prune.prunable(base, ckpt.preset))
        n_prune = round(s * n)
        if n_prune <= round(ckpt.sparsity * n):
            return base, ckpt
        key = (ckpt.path, n_prune)
        if self._pruned is not None and self._pruned[0] == key:
            return self._pruned[1], ckpt
        model = copy.deepcopy(base)
        prune.global_magnitude(model, s, preset=ckpt.preset, verbose=False)
        model.eval()
        self._pruned = (key, model)
        return model, ckpt

    def method_label(self, method: str) -> str:
        """``ig_smoothgrad[n_steps=16]`` when run with other than the method's defaults (as the
        study's results name it), else the method's name."""
        kw = self.method_params.get(method, {})
        return method + ("[" + ",".join(f"{k}={v}" for k, v in sorted(kw.items())) + "]" if kw else "")

    # ---------------------------------------------------------------- one update
    def update(self, sparsity: float, image_index: int = 0, method: str = DEFAULT_METHOD) -> dict:
        """Prune to ``sparsity`` and recompute prediction, attribution map and LOST box of one image.

        Returns a dict: prediction (class name), prediction_index, probability (softmax; on
        the real track the model-vs-human 16-category score), label (true class), correct (both
        None where the images have no labels in the model's classes, VOC on the paper track),
        map (H, W) float32 >= 0 at the image size, box (4,) float pixels x1, y1, x2, y2 of
        LOST's prediction, seed_box (the seed patch in pixels), gt_boxes (n, 4), mask (H, W)
        bool, image (H, W, 3) uint8, sparsity (realised over the prunable set), requested,
        checkpoint (iteration, sparsity, path; a pretrained model's is its dense weights file),
        extra_pruned (sparsity added without retraining), pretrained (a pretrained series),
        device, method, method_label (with its parameters when not the defaults), paper (the
        method is one of the paper's), seconds (timings).
        """
        with torch_threads(self.threads if self.device.type == "cpu" else None):
            return self._update(sparsity, image_index, method)

    def _update(self, sparsity, image_index, method) -> dict:
        if not isinstance(image_index, (int, np.integer)) or not 0 <= image_index < len(self):
            raise ValueError(f"image_index={image_index!r}: expected an int in 0..{len(self) - 1}")
        if method not in self.methods:
            raise ValueError(f"method={method!r} is not available for {self.label} ({self.kind}); "
                             f"expected one of {self.methods}")
        t0 = time.perf_counter()
        model, ckpt = self.model_at(sparsity)
        t1 = time.perf_counter()
        x = self.images.x[image_index:image_index + 1].to(self.device)
        with torch.no_grad():
            logits = model(x).float()
        target = int(logits.argmax(1))
        scores = self.track.scores(logits)[0]
        pred = int(scores.argmax())
        t2 = time.perf_counter()
        torch.manual_seed(tracks.STUDY_SEED)     # IG-SmoothGrad draws noise: the same every time
        amap = attribution.attribute(method, model, x, target=torch.tensor([target], device=self.device),
                                     progress=False, **self.method_params.get(method, {})
                                     )[0].detach().float().cpu().numpy()
        t3 = time.perf_counter()
        surf = models.surface(model)
        stride = surf.stride
        xp, _ = pad_to_multiple(x, stride)
        grid = surf.grid(xp.shape[-2:])
        with torch.no_grad():
            feats = patch_features(model, xp)    # the study's LOST features
        res = lost(feats.float(), grid, k=100, return_details=True)
        hw = tuple(x.shape[-2:])
        box = boxes_to_pixels(res.boxes.cpu(), stride, hw)[0].numpy()
        seed = int(res.seed[0])
        r, c = divmod(seed, grid[1])
        seed_box = boxes_to_pixels(torch.tensor([[c, r, c + 1, r + 1]]), stride, hw)[0].numpy()
        t4 = time.perf_counter()
        realised = prune.sparsity(model, "prunable", ckpt.preset)
        # VOC (paper track) has no labels in the models' classes and no boxes in its masks' set
        label = None if self.images.labels is None else int(self.images.labels[image_index])
        gt = [] if self.images.boxes is None else self.images.boxes[image_index]
        return dict(
            run=self.label, run_id=self.run_id, track=self.run.track, arch=self.run.arch,
            profile=self.profile,
            prediction=self.class_names[pred], prediction_index=pred, probability=float(scores[pred]),
            label=None if label is None else self.class_names[label],
            correct=None if label is None else pred == label,
            map=amap, box=box, seed_box=seed_box, seed=seed, grid=tuple(grid), stride=stride,
            score_map=res.score_map[0].float().cpu().numpy(),
            gt_boxes=np.asarray(gt, dtype=float).reshape(-1, 4),
            mask=self.images.masks[image_index].cpu().numpy().astype(bool),
            image=self.images.display[image_index].permute(1, 2, 0).cpu().numpy(),
            image_id=self.images.ids[image_index], image_index=int(image_index),
            sparsity=float(realised), requested=float(sparsity),
            checkpoint=dict(iteration=ckpt.iteration, sparsity=ckpt.sparsity, path=str(ckpt.path)),
            extra_pruned=max(0.0, float(realised) - ckpt.sparsity), pretrained=self.weights is not None,
            device=str(self.device),
            method=method, method_label=self.method_label(method),
            paper=bool(attribution.METHODS[method].paper),
            seconds=dict(prune=t1 - t0, predict=t2 - t1, attribution=t3 - t2, lost=t4 - t3, total=t4 - t0),
        )

    # ---------------------------------------------------------------- drawing
    def describe(self, out: dict) -> str:
        """One line of text for an update: sparsity, checkpoint, prediction, timing."""

        how = (figs.origin(out) + (f" + {format_sparsity(out['extra_pruned'])} pruned now, no retraining"
                             if out["extra_pruned"] > 0 else ""))
        mark = ("" if out["correct"] is None else
                ", correct" if out["correct"] else f", wrong, true: {out['label']}")
        return (f"sparsity {format_sparsity(out['sparsity'])} = {how} · prediction "
                f"{out['prediction']} ({out['probability']:.2f}{mark}) · "
                f"update {out['seconds']['total']:.2f} s on {out['device']}")

    def figure(self, out: dict, width: float = 7.5):
        """A matplotlib figure of one update: image with ground truth, attribution map, LOST box."""
        return figs.update_figure(out, width)

    def widget(self, runs=None, pretrained=tuple(PRETRAINED)):
        """The interactive explorer starting from this series (see :func:`widget`)."""
        return widget(self.profile, runs=runs, pretrained=pretrained, device=str(self.device),
                      n_images=len(self), start=self)


def widget(profile: str = "demo", runs=None, pretrained=tuple(PRETRAINED), device: str = "auto",
           n_images: int = 8, start: Explorer | None = None, method: str = DEFAULT_METHOD):
    """ipywidgets explorer: model picker, attribution method, sparsity slider, image index.

    The picker offers the ``pretrained`` models (keys of :data:`PRETRAINED`; those whose weights
    are neither cached nor downloadable are listed as unavailable, with a note naming the file
    and how to get it) and the profile's ``runs`` (labels or architectures; None = all).
    Choosing a run builds its :class:`Explorer`, running the prune stage if the run store lacks
    it (minutes the first time); a pretrained model trains nothing. Sliders update on release;
    each frame is a PNG set on an ``ipywidgets.Image`` (state, not output: see the package
    docstring), drawn once when the widget is built. Returns the widget (display it).
    """
    return ui.build(profile, lambda name: Explorer(profile, name, device=device, n_images=n_images),
                    runs=runs, pretrained=pretrained, n_images=n_images, start=start, method=method)
