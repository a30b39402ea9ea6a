"""Datasets: SynthScenes (procedural), model-vs-human stimuli with human responses, and the
paper-scale readers (ImageNet, PASCAL VOC, COCO20k). Import the submodule you need.

Shared by the readers, each imported one way (never importing a reader): :mod:`.paths` (where
datasets live, opening images), :mod:`.transforms` (ImageNet normalisation and transforms),
:mod:`.subsets` (seeded image subsets), :mod:`.boxes` (boxes of masks) and :mod:`.download`
(every network access of the fetchers)."""
