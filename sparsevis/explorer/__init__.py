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

The package's parts: :mod:`~sparsevis.explorer.series` (which series: pretrained models, runs),
:mod:`~sparsevis.explorer.checkpoints` (a series' checkpoints), :mod:`~sparsevis.explorer.core`
(:class:`Explorer` and :func:`widget`), :mod:`~sparsevis.explorer.ui` (the ipywidgets);
the figures are :mod:`sparsevis.figures.explorer`.
"""
from sparsevis.explorer.checkpoints import CheckpointInfo
from sparsevis.explorer.core import DEFAULT_METHOD, PREVIEW_LADDER, Explorer, widget
from sparsevis.explorer.series import DEFAULT_MODEL, PRETRAINED, default_series, find_run, pretrained_weights
from sparsevis.explorer.ui import MAX_SPARSITY, NO_RETRAINING, ONE_SHOT

__all__ = ["CheckpointInfo", "DEFAULT_METHOD", "DEFAULT_MODEL", "Explorer", "MAX_SPARSITY", "NO_RETRAINING",
           "ONE_SHOT", "PREVIEW_LADDER", "PRETRAINED", "default_series", "find_run", "pretrained_weights",
           "widget"]
