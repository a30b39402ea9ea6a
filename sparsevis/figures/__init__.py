"""Each chapter's figures, one module per chapter (``figures.<chapter>``).

A figure function takes the chapter's data (:func:`sparsevis.chapters.load`) and returns a
matplotlib figure; the drawing primitives it uses (sparsity axis, bands, overlays, boxes,
captions, saving) live in :mod:`sparsevis.plotting`, so a notebook is a parameters cell, one
data call and a few lines of glue per figure.
"""
