"""Image files to pixels: any format a photo folder holds, as 8-bit RGB at a given size.

- JPEG, PNG, GIF (first frame), BMP and WebP (by file suffix: :data:`IMAGE_SUFFIXES`);
- EXIF orientation is applied; grayscale, CMYK, palette, alpha and 16-bit
  images become 8-bit RGB (alpha is dropped, as TensorFlow's decoders do);
- corrupt or truncated data raises, and :func:`decode_failure` says why in words.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (40, 20), 200).save(buffer, "PNG")
    >>> pixels = decode_image(buffer.getvalue(), (10, 20))
    >>> pixels.shape, pixels.dtype.name, int(pixels[0, 0, 0])
    ((10, 20, 3), 'uint8', 200)
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp"})
#: Bumped whenever decode_image could produce different pixels for the same file.
DECODER_VERSION = 1


def content_hash(data: bytes) -> str:
    """The cache identity of an image: sha256 of its encoded bytes."""
    return hashlib.sha256(data).hexdigest()


def read_source(source) -> bytes:
    """Encoded bytes of an example's source (a path, or bytes already in memory)."""
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _to_rgb(image):
    """8-bit RGB from any PIL mode; 16-bit and float grayscale are rescaled, not clipped."""
    from PIL import Image

    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = max(float(values.max()), 1e-12)
        else:
            top = 65535.0 if values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        # Palette transparency must go through RGBA, or PIL warns and may pick the wrong colour.
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Encoded bytes -> uint8 [h, w, 3] RGB at ``size`` (EXIF-rotated, first frame).

    Raises ``ValueError`` (or PIL's ``OSError``) for corrupt or truncated data.
    """
    from PIL import Image, ImageOps

    height, width = size
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            # Let libjpeg decode at a reduced scale when the photo is much larger than needed.
            image.draft("RGB", (width, height))
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def decode_failure(err: Exception) -> str:
    """Why decode_image failed, in words for a warning or an error line."""
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        # PIL's own text names an in-memory buffer ("<_io.BytesIO object at 0x...>"), not the file.
        return "not a recognised image format"
    return f"{type(err).__name__}: {err}".strip()
