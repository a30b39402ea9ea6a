"""Which series the explorer shows: the pretrained models it offers, a profile's prune runs or an
imported series by name, and what it shows first."""
from __future__ import annotations

from sparsevis.config import PruneRun, get_profile
from sparsevis.data import mvh
from sparsevis.importer import imported_run
from sparsevis.weights import Weights, pretrained

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
