"""Which decoder turned image bytes into pixels: a part of every image feature-cache key.

The same JPEG decodes to slightly different pixels under different libjpeg-turbo builds
(inverse DCT, chroma upsampling and DCT-domain scaling are not bit-exact across versions),
and Pillow's resampling and mode conversions change between its releases. A feature
computed from one decoder's pixels is therefore not the feature of another decoder's, so
the preprocessing id of images names every library on the path from bytes to pixels:
Pillow, its JPEG library and its WebP library. Lossless formats (PNG, BMP, GIF) decode
exactly under any zlib, so zlib is left out.

Example:
    >>> versions = decoder_versions()
    >>> sorted(versions)
    ['jpeg', 'pillow', 'webp']
    >>> image_preprocessing_id((224, 224), versions=versions).startswith("image-v1-224x224-pil-bilinear-exif+pillow-")
    True
    >>> decoder_differences({"pillow": "12.1.0", "jpeg": "libjpeg-turbo 3.0.4", "webp": "1.5.0"}, versions) != []
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hubcli.train.image_decode import DECODER_VERSION


def decoder_versions() -> dict[str, str]:
    """Versions of the libraries that decode images in this process (Pillow and what it links).

    Example:
        >>> decoder_versions()["jpeg"].split(" ")[0] in ("libjpeg-turbo", "libjpeg", "none")
        True
    """
    import PIL
    from PIL import features

    turbo = features.version("libjpeg_turbo")
    jpeg = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}" if features.version("jpg") else "none"
    return {"pillow": PIL.__version__, "jpeg": jpeg, "webp": features.version("webp") or "none"}


def describe_decoder(versions: Mapping[str, str]) -> str:
    """One phrase for messages: ``Pillow 13.0.0 with libjpeg-turbo 3.2.0 and WebP 1.6.0``.

    Example:
        >>> describe_decoder({"pillow": "13.0.0", "jpeg": "libjpeg-turbo 3.2.0", "webp": "1.6.0"})
        'Pillow 13.0.0 with libjpeg-turbo 3.2.0 and WebP 1.6.0'
    """
    return f"Pillow {versions['pillow']} with {versions['jpeg']} and WebP {versions['webp']}"


def image_preprocessing_id(image_size: Sequence[int], *, versions: Mapping[str, str] | None = None) -> str:
    """The preprocessing id of images decoded here and resized to ``image_size`` (height, width).

    It names hubcli's decoding steps (version, size, resize method, EXIF orientation) and
    the decoder libraries, so features from another decoder never share a cache key.

    Example:
        >>> image_preprocessing_id((32, 48), versions={"pillow": "13.0.0", "jpeg": "libjpeg-turbo 3.2.0", "webp": "1.6.0"})
        'image-v1-32x48-pil-bilinear-exif+pillow-13.0.0+libjpeg-turbo-3.2.0+webp-1.6.0'
    """
    versions = versions or decoder_versions()
    height, width = (int(side) for side in image_size)
    # The JPEG entry already starts with its library's name ("libjpeg-turbo 3.2.0").
    libraries = f"pillow-{versions['pillow']}+{versions['jpeg'].replace(' ', '-')}+webp-{versions['webp']}"
    return f"image-v{DECODER_VERSION}-{height}x{width}-pil-bilinear-exif+{libraries}"


def decoder_differences(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """What differs between two decoders, as ``"pillow 12.1.0 != 13.0.0"`` items (empty: the same).

    Example:
        >>> decoder_differences({"pillow": "12.1.0", "jpeg": "j", "webp": "w"}, {"pillow": "13.0.0", "jpeg": "j", "webp": "w"})
        ['pillow 12.1.0 != 13.0.0']
    """
    return [f"{name} {expected.get(name)} != {actual.get(name)}" for name in sorted({*expected, *actual}) if expected.get(name) != actual.get(name)]
