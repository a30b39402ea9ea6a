"""A PNG preview grid of a SceneBatch (boxes and captions drawn on)."""
from __future__ import annotations

import io
import os

from ...fileio import atomic_write_bytes
from .batch import SceneBatch
from .splits import CLASSES, TEXTURES


def save_grid_png(batch: SceneBatch, path: str | os.PathLike, n: int = 64, ncol: int = 8, scale: int = 2,
                  boxes: bool = True, captions: bool = True):
    """Write a preview grid of the first ``n`` images (boxes in red, captions shape/texture/condition)."""
    from PIL import Image, ImageDraw

    n = min(n, len(batch))
    S = batch.size * scale
    cap = 12 if captions else 0
    nrow = (n + ncol - 1) // ncol
    canvas = Image.new("RGB", (ncol * (S + 2), nrow * (S + 2 + cap)), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        arr = batch.images[i].permute(1, 2, 0).numpy()
        tile = Image.fromarray(arr).resize((S, S), Image.NEAREST)
        x0, y0 = (i % ncol) * (S + 2), (i // ncol) * (S + 2 + cap)
        canvas.paste(tile, (x0, y0))
        if boxes:
            x1, y1, x2, y2 = (batch.boxes[i] * scale).tolist()
            draw.rectangle([x0 + x1, y0 + y1, x0 + x2 - 1, y0 + y2 - 1], outline=(255, 0, 0))
        if captions:
            txt = f"{CLASSES[int(batch.labels[i])][:5]}/{TEXTURES[int(batch.texture_labels[i])][:5]}"
            if batch.condition[i] != "0":
                txt += f" {batch.condition[i]}"
            draw.text((x0 + 1, y0 + S), txt, fill=(0, 0, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
