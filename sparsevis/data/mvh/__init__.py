"""model-vs-human: stimuli, human trial-by-trial responses, silhouette masks, and a fetcher.

The 17 out-of-distribution datasets of Geirhos et al., "Partial success in closing the gap
between human and machine vision" (NeurIPS 2021), with the responses of their human observers
(16-way forced choice among :data:`~sparsevis.data.imagenet16.CATEGORIES`).

One module per job, imported one way (catalog <- images <- trials, masks <- fetcher); every
public name is importable from here:

- :mod:`~sparsevis.data.mvh.catalog`: the datasets, their conditions and observers, where they live
- :mod:`~sparsevis.data.mvh.images`: the image table of a dataset and the stimuli as a torch Dataset
- :mod:`~sparsevis.data.mvh.trials`: the observers' CSVs, joined trial by trial to the images
- :mod:`~sparsevis.data.mvh.masks`: object masks and boxes of the edge images, from the silhouettes
- :mod:`~sparsevis.data.mvh.fetcher`: downloading a dataset and its responses (online use)
"""
from __future__ import annotations

from ..boxes import masks_to_boxes
from ..download import tree_sha256
from ..paths import data_root
from ..transforms import IMAGENET_MEAN, IMAGENET_STD, to_normalized_tensor
from .catalog import (
                      CONDITIONS,
                      DATASETS,
                      LOCAL_DATASETS,
                      N_SUBJECTS,
                      NOISE_DATASETS,
                      SESSION_DATASETS,
                      TEXTURE_SHAPE_DATASETS,
                      check_dataset,
                      dataset_dir,
                      mvh_root,
                      raw_data_dir,
)
from .fetcher import (
                      ARCHIVE_SHA256,
                      RAW_DATA_URL,
                      REFERENCE_TREE_SHA256,
                      RELEASE_URL,
                      fetch,
)
from .images import (
                      IMAGE_COLUMNS,
                      IMAGE_SIZE,
                      MVHImages,
                      load_image,
                      load_images,
                      parse_cue_conflict,
)
from .masks import SILHOUETTE_THRESHOLD, edge_masks, silhouette_mask
from .trials import (
                      RAW_COLUMNS,
                      TRIAL_COLUMNS,
                      join_trials,
                      load_trials,
                      read_raw_csv,
                      short_imagename,
)

__all__ = [
    "DATASETS", "NOISE_DATASETS", "TEXTURE_SHAPE_DATASETS", "SESSION_DATASETS", "LOCAL_DATASETS",
    "CONDITIONS", "N_SUBJECTS", "RAW_COLUMNS", "IMAGE_COLUMNS", "TRIAL_COLUMNS", "IMAGE_SIZE",
    "SILHOUETTE_THRESHOLD", "RELEASE_URL", "RAW_DATA_URL", "ARCHIVE_SHA256", "REFERENCE_TREE_SHA256",
    "IMAGENET_MEAN", "IMAGENET_STD",
    "data_root", "mvh_root", "dataset_dir", "raw_data_dir", "check_dataset", "short_imagename",
    "parse_cue_conflict", "load_images", "MVHImages", "load_image", "to_normalized_tensor",
    "read_raw_csv", "join_trials", "load_trials", "silhouette_mask", "edge_masks", "masks_to_boxes",
    "tree_sha256", "fetch",
]
