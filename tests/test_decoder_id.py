"""Image feature-cache keys name the decoder: a Pillow or libjpeg-turbo upgrade never reuses old features."""

from __future__ import annotations

import PIL
from PIL import features

from hubcli.train.decoder_id import decoder_differences, decoder_versions, describe_decoder, image_preprocessing_id
from hubcli.train.feature_cache import FeatureCache

_HERE = {"pillow": "13.0.0", "jpeg": "libjpeg-turbo 3.2.0", "webp": "1.6.0"}


def test_versions_are_the_ones_this_process_decodes_with():
    versions = decoder_versions()
    assert versions["pillow"] == PIL.__version__
    turbo = features.version("libjpeg_turbo")
    assert versions["jpeg"] == (f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}")
    assert versions["webp"] == (features.version("webp") or "none")
    assert PIL.__version__ in image_preprocessing_id((224, 224))


def test_every_library_and_the_size_change_the_id():
    base = image_preprocessing_id((224, 224), versions=_HERE)
    changed = [
        image_preprocessing_id((224, 224), versions={**_HERE, "pillow": "12.1.0"}),
        image_preprocessing_id((224, 224), versions={**_HERE, "jpeg": "libjpeg-turbo 3.0.4"}),
        image_preprocessing_id((224, 224), versions={**_HERE, "jpeg": "libjpeg 9"}),
        image_preprocessing_id((224, 224), versions={**_HERE, "webp": "1.5.0"}),
        image_preprocessing_id((224, 192), versions=_HERE),
    ]
    assert len({base, *changed}) == 6


def test_another_decoder_gets_another_cache_directory(tmp_path):
    upgraded = {**_HERE, "jpeg": "libjpeg-turbo 3.1.0"}
    here = FeatureCache(tmp_path, "sha256:" + "ab" * 32, image_preprocessing_id((32, 32), versions=_HERE))
    there = FeatureCache(tmp_path, "sha256:" + "ab" * 32, image_preprocessing_id((32, 32), versions=upgraded))
    here.put(["k"], [[1.0, 2.0]])
    assert here.directory != there.directory
    assert there.get(["k"]) == ({}, ["k"])


def test_differences_name_each_library_that_differs():
    assert decoder_differences(_HERE, dict(_HERE)) == []
    other = {**_HERE, "pillow": "12.1.0", "webp": "none"}
    assert decoder_differences(_HERE, other) == ["pillow 13.0.0 != 12.1.0", "webp 1.6.0 != none"]
    assert describe_decoder(other) == "Pillow 12.1.0 with libjpeg-turbo 3.2.0 and WebP none"


def test_the_image_modality_keys_its_features_by_this_processs_decoder():
    from hubcli.train.images import ImageModality

    assert ImageModality((32, 48)).preprocessing == image_preprocessing_id((32, 48), versions=decoder_versions())
