"""The pictures the simulated models "generate": a deterministic PNG per (version, prompt, seed).

Made on the spot with Pillow, never shipped: the same three values always give the same bytes,
other values another picture (colours and shapes are drawn from a hash of them).
"""

from __future__ import annotations

import hashlib
import random
from io import BytesIO

from PIL import Image, ImageDraw, ImageOps

SIZE = 1024  # FLUX.1-dev's default output (aspect ratio 1:1, one megapixel)


def picture(version: str, prompt: str, seed: int, index: int = 0, *, size: int = SIZE) -> bytes:
    """PNG bytes for one output of a prediction."""
    digest = hashlib.sha256(f"{version}\0{prompt}\0{seed}\0{index}".encode()).digest()
    rng = random.Random(digest)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    # A soft radial backdrop between two colours, then a few translucent shapes.
    backdrop = ImageOps.colorize(Image.radial_gradient("L").resize((size, size)), colour(), colour())
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(3 + rng.randrange(4)):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 10, size // 3)
        fill = (*colour(), 150)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=fill)
    image = Image.alpha_composite(backdrop.convert("RGBA"), layer).convert("RGB")
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
