"""Generated pictures: what random-weight models see in tests, and what int8 is calibrated on.

Nothing may be downloaded at run time, so the server cannot calibrate its int8 model on a data
set, and the tests cannot send photos. Coloured rectangles on a coloured ground give a model's
convolutions edges, flat areas and colours at every scale, which is what calibration needs: the
range of each layer's activations on pictures that look like pictures, not noise.
"""

from __future__ import annotations

import random

from PIL import Image


def scene(seed: int, size: tuple[int, int] = (960, 540)) -> Image.Image:
    """Return a deterministic picture of twelve coloured rectangles on a coloured ground."""
    rng = random.Random(seed)  # noqa: S311 - a picture, not a secret
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(20, size[0] // 2), rng.randrange(20, size[1] // 2)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        image.paste(colour, (x, y, min(size[0], x + w), min(size[1], y + h)))
    return image
