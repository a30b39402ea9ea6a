"""Attribution maps for the interpretability study (protocol (i)).

One class per method, captum-like, each with the single verb
``Method(model, **params).attribute(images, target=None) -> (B, H, W)``, and one entry point::

    sparsevis.attribution.attribute(method, model, images, target=None, **params)

which returns the pooled, non-negative map of each image at the image resolution, computed in
batches on the images' device (``target`` defaults to the predicted class). :data:`METHODS` maps
names to classes (paper methods first), whose class attributes carry the metadata: ``label``
and ``color`` (for figures), ``paper`` (True for the paper's methods, False for extensions),
``kinds`` (cnn / vit / swin), ``pooling``, ``defaults``; a class joins it with ``@register``.

=================  =====  ===============  ==================================================
method             paper  kinds            pooling
=================  =====  ===============  ==================================================
ig_smoothgrad      yes    cnn, vit, swin   sum_c a_c^2 (squared L2 over colour channels)
gradcam            yes    cnn, vit, swin   relu, bilinear upsampling, min-max
guided_gradcam     yes    cnn              sum_c a_c^2 (as IG)
cls_attention      yes    vit              heads summed, bilinear upsampling, min-max
gradient           no     cnn, vit, swin   sum_c |g_c|
rollout            no     vit              CLS row of the rollout, bilinear upsampling, min-max
=================  =====  ===============  ==================================================

Min-max maps are in [0, 1]; a constant map becomes all zeros, which the metrics count as
degenerate (``sparsevis.metrics.degenerate``). :func:`randomisation_check` is
the model-randomisation sanity check of Adebayo et al. (2018).
"""
from .attention import ClsAttention, Rollout, block_attention, block_qk
from .base import Attribution, channel_energy, eval_mode, minmax, upsample
from .cam import GradCam, GuidedGradCamMethod
from .gradients import Gradient, IGSmoothGrad
from .registry import METHODS, attribute, describe, get_method, methods_for, register
from .sanity import randomisation_check, randomise, spearman

__all__ = [
    "METHODS", "attribute", "describe", "get_method", "methods_for", "register",
    "Attribution", "IGSmoothGrad", "GradCam", "GuidedGradCamMethod", "ClsAttention", "Rollout",
    "Gradient",
    "randomisation_check", "randomise", "spearman",
    "block_qk", "block_attention", "channel_energy", "eval_mode", "minmax", "upsample",
]
