"""The live explorer: prune a model to any sparsity and watch its prediction, attribution map and
LOST box change.

A series is either one of the profile's prune runs or a pretrained torchvision model
(:data:`PRETRAINED`: ResNet-18/50, ViT-B/32, Swin-V2-T, MobileNetV2 with their ImageNet weights)
on the model-vs-human edge stimuli (real images; the silhouette of the same name is the object
mask). Moving to sparsity ``s`` takes the series' nearest checkpoint at or below ``s`` (a
pretrained model has one: its dense weights), loads it (:func:`sparsevis.prune.load`) and, when
``s`` is above the checkpoint's own sparsity, prunes it further with
:func:`sparsevis.prune.global_magnitude` to exactly ``s`` over the checkpoint's prunable set
(cumulative: the checkpoint's pruned weights stay pruned). There is **no retraining** (and no
BatchNorm recalibration) between checkpoints: only a run's checkpoints themselves were retrained
(synthetic track: learning-rate rewinding) or recalibrated. A pretrained model is pruned one-shot
from its dense weights, so nothing trains before the first update.

Pretrained weights come from torch's checkpoint cache (``torch.hub.get_dir()/checkpoints/<file>``,
the file named as torchvision names it) or are downloaded when the machine is online; offline and
missing, :func:`pretrained_weights` says which file to put where (:attr:`Weights.note`).

The logic needs no browser::

    ex = Explorer("tiny", "torchvision/mobilenet_v2")          # or a run: "synthetic-sv_resnet_s-imp-s0"
    out = ex.update(0.6, image_index=0, method="gradcam")
    out["prediction"], out["map"].shape, out["box"], out["sparsity"], out["seconds"]
    fig = ex.figure(out)                         # matplotlib: image, map, LOST box

and :func:`widget` (or :meth:`Explorer.widget`) wraps it in ipywidgets (model picker, sparsity
slider, image index, attribution method, the update's time). Each frame is a PNG set as the value
of an ``ipywidgets.Image``: widget state, not output messages, so nothing is written into an
``Output`` widget while a cell runs (under papermill, nbclient mirrors Output-widget output back
to the kernel on the shell channel from its iopub handler, and a reply arriving around that send
can leave the cell waiting for ever: jupyter/nbclient#312). It runs in Jupyter and Colab alike.
"""
from __future__ import annotations

import contextlib
import copy
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparsevis import attribution, models, prune, runner, tracks
from sparsevis.config import PruneRun, get_profile
from sparsevis.data import mvh
from sparsevis.discovery import boxes_to_pixels, lost, pad_to_multiple
from sparsevis.importer import imported_run
from sparsevis.plotting import _frame_png, format_sparsity
from sparsevis.runtime import resolve_device
from sparsevis.store import checkpoints
from sparsevis.studies import study_params
from sparsevis.studies.discovery import patch_features
from sparsevis.weights import Weights, pretrained

NO_RETRAINING = ("Between checkpoints the model is pruned further by global magnitude from the "
                 "nearest checkpoint at or below the chosen sparsity, with no retraining (and no "
                 "BatchNorm recalibration): only the checkpoints themselves were retrained.")
ONE_SHOT = ("A pretrained model is pruned one-shot by global magnitude from its dense ImageNet "
            "weights, with no retraining (and no BatchNorm recalibration).")
DEFAULT_METHOD = "gradcam"
MAX_SPARSITY = 0.99
# Pretrained series: model name -> torchvision weights name (the ImageNet weights the real and
# paper tracks start from)
PRETRAINED = {
    "torchvision/mobilenet_v2": "IMAGENET1K_V1",
    "torchvision/resnet18": "IMAGENET1K_V1",
    "torchvision/resnet50": "IMAGENET1K_V1",
    "torchvision/vit_b_32": "IMAGENET1K_V1",
    "torchvision/swin_v2_t": "IMAGENET1K_V1",
}
DEFAULT_MODEL = "torchvision/mobilenet_v2"    # its weights: python -m sparsevis fetch-weights
PREVIEW_LADDER = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)  # preview sparsities of a series with one checkpoint


def pretrained_weights(name: str) -> Weights:
    """The :class:`sparsevis.weights.Weights` of a pretrained explorer model (a key of :data:`PRETRAINED`)."""
    if name not in PRETRAINED:
        raise ValueError(f"model={name!r} is not a pretrained explorer model; expected one of "
                         f"{', '.join(PRETRAINED)}")
    return pretrained(name, PRETRAINED[name])


def default_series(profile: str) -> str:
    """What the explorer shows first: :data:`DEFAULT_MODEL` (pretrained, nothing to train) when
    its weights and the model-vs-human edge stimuli are at hand, else the profile's first run."""

    have_stimuli = all((mvh.mvh_root() / "datasets" / d).is_dir() for d in ("edge", "silhouette"))
    if have_stimuli and pretrained_weights(DEFAULT_MODEL).available:
        return DEFAULT_MODEL
    return find_run(profile).label


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint of a prune run: file, iteration, realised sparsity, prunable set."""

    path: Path
    iteration: int
    sparsity: float
    preset: str
    n_prunable: int | None


def find_run(profile: str, run: str | PruneRun | None = None) -> PruneRun:
    """The run of ``profile`` named ``run``: a :class:`PruneRun`, its label
    (``synthetic-sv_resnet_s-imp-s0``), an architecture (``sv_resnet_s``, ``timm/sv_resnet_s``;
    the first run of that architecture), or an imported series (its label or folder). None: the
    profile's first run."""
    runs = get_profile(profile).runs
    if isinstance(run, PruneRun):
        return run
    if run is None:
        return runs[0]
    for r in runs:
        if run == r.label:
            return r
    for r in runs:
        if run in (r.arch, r.arch.split("/")[-1]):
            return r
    try:   # an imported checkpoint series, by label or folder
        return imported_run(run)
    except FileNotFoundError:
        raise ValueError(f"run={run!r} is not a run of profile {profile!r} nor an imported series; expected "
                         f"a label ({', '.join(r.label for r in runs)}), an architecture or an imported "
                         "series' label") from None


def _checkpoint_info(path: Path, default_preset: str) -> CheckpointInfo:
    meta = prune.read(path)["meta"]   # verified: an edited sidecar or file is an error, not a label
    return CheckpointInfo(Path(path), int(meta["iteration"]), float(meta.get("sparsity") or 0.0),
                          meta.get("preset") or default_preset, meta.get("n_prunable"))


def _base(out: dict) -> str:
    """What an update was pruned from: the dense pretrained weights or a run's checkpoint."""

    if out["pretrained"]:
        return "dense pretrained weights"
    ck = out["checkpoint"]
    return f"checkpoint {ck['iteration']} ({format_sparsity(ck['sparsity'])})"


class Explorer:
    """Re-prune one series live (see the module docstring).

    profile: the profile whose runs, images and attribution parameters are used. run: a
    pretrained model (a key of :data:`PRETRAINED`, e.g. ``"torchvision/resnet50"``: its dense
    ImageNet weights, pruned one-shot, on the edge stimuli) or a prune run of the profile
    (:func:`find_run`; None: its first run). device: where the model runs ("auto": a GPU when
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
            self.checkpoints = [_checkpoint_info(p, self.run.preset) for p in checkpoints(self.prune_dir)]
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

    @contextlib.contextmanager
    def _threads(self):
        if self.threads is None or self.device.type != "cpu":
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(int(self.threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

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
        with self._threads():
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

        how = (_base(out) + (f" + {format_sparsity(out['extra_pruned'])} pruned now, no retraining"
                             if out["extra_pruned"] > 0 else ""))
        mark = ("" if out["correct"] is None else
                ", correct" if out["correct"] else f", wrong, true: {out['label']}")
        return (f"sparsity {format_sparsity(out['sparsity'])} = {how} · prediction "
                f"{out['prediction']} ({out['probability']:.2f}{mark}) · "
                f"update {out['seconds']['total']:.2f} s on {out['device']}")

    def figure(self, out: dict, width: float = 7.5):
        """A matplotlib figure of one update: image with ground truth, attribution map, LOST box."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle


        img, amap = out["image"], out["map"]
        fig, axes = plt.subplots(1, 3, figsize=(width, width / 3 + 0.9))
        for ax in axes:
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[0].contour(out["mask"], levels=[0.5], colors="white", linewidths=1.0)
        for b in out["gt_boxes"]:
            axes[0].add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                        ec="#1b9e77", lw=1.6, ls="--"))
        axes[0].set_title("image" if out["label"] is None else f"image · true: {out['label']}", fontsize=9)
        peak = float(np.percentile(amap, 99.5)) if amap.size else 0.0     # as the study's figures
        m = np.clip(amap / peak, 0, 1) if peak > 0 else np.zeros_like(amap)
        axes[1].imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(m, cmap="inferno", vmin=0, vmax=1, alpha=np.clip(0.15 + 0.85 * m, 0, 1))
        axes[1].contour(out["mask"], levels=[0.5], colors="white", linewidths=0.8)
        kind = "paper" if out["paper"] else "extension"
        axes[1].set_title(f"{out.get('method_label', out['method'])} ({kind})", fontsize=9)
        sm = out["score_map"]
        h, w = img.shape[:2]
        gh, gw = sm.shape
        s = out["stride"]
        lim = float(np.abs(sm).max()) or 1.0
        axes[2].imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=255)
        axes[2].imshow(sm, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.6, interpolation="nearest",
                       extent=(0, gw * s, gh * s, 0))
        axes[2].set_xlim(0, w)
        axes[2].set_ylim(h, 0)
        for b in out["gt_boxes"]:
            axes[2].add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                        ec="#1b9e77", lw=1.4, ls="--"))
        b = out["box"]
        axes[2].add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="#d95f02", lw=2.2))
        sb = out["seed_box"]
        axes[2].add_patch(Rectangle((sb[0], sb[1]), sb[2] - sb[0], sb[3] - sb[1], fc="#e7298a",
                                    ec="white", lw=0.8, alpha=0.9))
        axes[2].set_title("LOST: box (orange), seed (pink)", fontsize=9)
        how = _base(out) + (", pruned further without retraining" if out["extra_pruned"] > 0 else "")
        fig.suptitle(f"{out['run']} · {out['track']} track · profile {out['profile']}\n"
                     f"sparsity {format_sparsity(out['sparsity'])} ({how}) · prediction: "
                     f"{out['prediction']} ({out['probability']:.2f}"
                     + ("" if out["correct"] is None else ", correct" if out["correct"] else ", wrong") + ")",
                     fontsize=9)
        fig.tight_layout()
        return fig

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
    each frame is a PNG set on an ``ipywidgets.Image`` (state, not output: see the module
    docstring), drawn once when the widget is built. Returns the widget (display it).
    """
    import ipywidgets as W


    bad = [m for m in pretrained if m not in PRETRAINED]
    if bad:
        raise ValueError(f"pretrained={bad!r}: expected names from {', '.join(PRETRAINED)}")
    weights = {m: pretrained_weights(m) for m in pretrained}
    labels = [find_run(profile, r).label for r in (runs or [r.label for r in get_profile(profile).runs])]
    options = [(m + (" (pretrained)" if w.available else " (unavailable)"), m) for m, w in weights.items()]
    options += [(f"{lab} (prune run)", lab) for lab in labels]
    explorers: dict[str, Explorer] = {}
    if start is not None:
        explorers[start.label] = start
        if start.label not in [v for _, v in options]:
            options.insert(0, (start.label, start.label))
        first = start.label
    else:
        first = next((m for m, w in weights.items() if w.available), labels[0])

    def get(name: str) -> Explorer:
        if name not in explorers:
            explorers[name] = Explorer(profile, name, device=device, n_images=n_images)
        return explorers[name]

    model_dd = W.Dropdown(options=options, value=first, description="model",
                          layout=W.Layout(width="30em"))
    sparsity = W.FloatSlider(value=0.0, min=0.0, max=MAX_SPARSITY, step=0.005, description="sparsity",
                             continuous_update=False, readout_format=".1%", layout=W.Layout(width="36em"))
    image = W.IntSlider(value=0, min=0, max=max(n_images - 1, 0), description="image",
                        continuous_update=False)
    method_dd = W.Dropdown(description="method", layout=W.Layout(width="20em"))
    info = W.HTML()
    missing = "".join(f"<br>{w.note}" for w in weights.values() if not w.available)
    note = W.HTML(f"<small><b>No retraining:</b> {NO_RETRAINING} {ONE_SHOT}{missing}</small>")
    frame = W.Image(format="png", layout=W.Layout(width="100%", max_width="60em"))
    busy = {"on": False}

    def error(e: Exception) -> None:   # shown in the widget instead of lost in a log
        info.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"

    def methods_of(ex: Explorer):
        return [(f"{ex.method_label(m)}{'' if attribution.METHODS[m].paper else ' (extension)'}", m)
                for m in ex.methods]

    def redraw(*_):
        if busy["on"]:
            return
        try:
            ex = get(model_dd.value)
            res = ex.update(sparsity.value, int(image.value), method_dd.value)
        except Exception as e:
            error(e)
            return
        frame.value = _frame_png(ex.figure(res))   # PNG bytes; closes the figure
        ck = ("dense pretrained weights (pruned one-shot, live)" if ex.weights is not None else
              "checkpoints (iteration: sparsity): "
              + ", ".join(f"{c.iteration}: {format_sparsity(c.sparsity)}" for c in ex.checkpoints))
        info.value = f"<small>{ex.describe(res)}<br>{ck}</small>"

    def on_model(change=None):
        info.value = f"<small>loading {model_dd.value} ...</small>"
        try:
            ex = get(model_dd.value)
        except Exception as e:
            error(e)
            return
        busy["on"] = True
        try:
            opts = methods_of(ex)
            method_dd.options = opts
            names = [v for _, v in opts]
            method_dd.value = method if method in names else names[0]
            image.max = len(ex) - 1
            image.value = min(image.value, len(ex) - 1)
        finally:
            busy["on"] = False
        redraw()

    model_dd.observe(on_model, names="value")
    for w in (sparsity, image, method_dd):
        w.observe(redraw, names="value")
    on_model()
    return W.VBox([W.HBox([model_dd, method_dd]), W.HBox([sparsity, image]), note, info, frame])
