"""The synthetic track: SynthScenes, small models trained from scratch (CPU minutes)."""
from __future__ import annotations

from sparsevis.data import synthscenes as ss
from sparsevis.fileio import stable_hash
from sparsevis.train import TensorData

from .base import STUDY_SEED, AlignmentSet, Images, Track, TrackData


class Synthetic(Track):
    name = "synthetic"
    note = ("Synthetic track: small models trained from scratch on SynthScenes by this project "
            "(IMP with learning-rate rewinding); these are not the paper's models or results.")
    class_names = tuple(ss.CLASSES)

    def train_data(self, run) -> TrackData:
        d = run.data
        kw = dict(seed=run.seed, size=d.size, texture_prob=d.texture_prob)
        tr, te = ss.make_split("train", d.n_train, **kw), ss.make_split("clean", d.n_test, **kw)
        return TrackData(TensorData(tr.images, tr.labels, ss.normalize),
                         TensorData(te.images, te.labels, ss.normalize, augment=False),
                         len(ss.CLASSES), stable_hash([tr.digest(), te.digest()]), "synthscenes-clean",
                         to_decision=self.decide)

    def train_sizes(self, run) -> tuple[int, int]:
        return run.data.n_train, run.data.n_test

    def study_images(self, run, n: int | None) -> Images:
        b = ss.make_split("clean", n, seed=STUDY_SEED, size=run.data.size, texture_prob=run.data.texture_prob)
        return Images("synthscenes-clean", ss.normalize(b.images), b.images, b.labels, b.masks,
                      [box[None] for box in b.boxes], [f"clean-{i}" for i in range(n)])

    def inputs(self, study: str, run, n: int | None) -> list:
        # generated images: the generator's code is in the study's code version, so its
        # arguments identify them
        splits = ["cue-conflict", "ood"] if study == "alignment" else ["clean"]
        return [splits, n, STUDY_SEED, run.data.size, run.data.texture_prob]

    def alignment_sets(self, run, n: int | None) -> list[AlignmentSet]:
        """Cue-conflict and every OOD condition of SynthScenes, ``n`` images each; no human
        data exists for them, so none is simulated."""
        out = []
        for dataset, conditions in [("cue-conflict", (None,)), *ss.ood_splits()]:
            # every condition of a dataset at once: its scenes are rendered once, not per condition
            every = ss.make_split(dataset, n, seed=STUDY_SEED, size=run.data.size, texture_prob=run.data.texture_prob)
            for condition in conditions:
                b = every if condition is None else every.where(condition)
                name = dataset if condition is None else f"{dataset}:{condition}"
                out.append(AlignmentSet(name, ss.normalize(b.images), [f"{name}-{i}" for i in range(n)],
                                        labels=b.labels, texture_labels=getattr(b, "texture_labels", None)))
        return out
