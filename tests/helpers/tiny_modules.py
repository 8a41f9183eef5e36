"""Tiny but real hub modules that the tests build with TensorFlow.

Each builder writes a genuine SavedModel that follows the format it stands
for, small enough to build in about a second:

- :func:`build_image_module`: TF2 Reusable SavedModel, images -> feature vector,
  with a batch-norm whose training and inference outputs differ.
- :func:`build_text_module`: TF2 Reusable SavedModel, strings -> embedding
  (hashed bag of words made of ``tf.strings`` ops).
- :func:`build_tf1_hub_module`: TF1 Hub format (``tfhub_module.pb`` plus a
  SavedModel with a ``default`` signature).
- :func:`build_archive`: a ``.tar.gz`` whose root is the module directory, as
  TF Hub hosting serves them.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

# ModuleDef proto of tensorflow_hub: field 1 (format) = FORMAT_V3 (3).
_TFHUB_MODULE_DEF_V3 = b"\x08\x03"


def _reusable_module_class():
    import tensorflow as tf

    class ReusableModule(tf.Module):
        # Shadow tf.Module's read-only properties so the Reusable SavedModel
        # attributes can be assigned as plain tracked lists and get saved.
        variables = ()
        trainable_variables = ()
        regularization_losses = ()

    return ReusableModule


def build_image_module(path, image_size: int = 32, output_dim: int = 8, seed: int = 0, batch_norm: bool = True) -> Path:
    """Save an image feature-vector module: float32 [None, S, S, 3] in [0, 1] -> [None, output_dim].

    Features are a 4x4 area-pooled colour grid through a dense layer, a batch
    norm (batch statistics when ``training=True``, moving statistics when
    ``training=False``) and ELU, so colour and layout are linearly separable.
    ``batch_norm=False`` leaves the batch norm out: training and inference
    outputs are then the same, and so is a batch split across devices.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    grid = 4
    in_dim = grid * grid * 3
    module = _reusable_module_class()()
    module.kernel = tf.Variable(
        rng.normal(0.0, 1.0 / np.sqrt(in_dim), (in_dim, output_dim)).astype(np.float32), name="dense/kernel"
    )
    module.bias = tf.Variable(np.zeros(output_dim, np.float32), name="dense/bias")
    module.gamma = tf.Variable(np.ones(output_dim, np.float32), name="bn/gamma")
    module.beta = tf.Variable(np.zeros(output_dim, np.float32), name="bn/beta")
    # The moving statistics start away from any batch's, so frozen and training outputs differ.
    module.moving_mean = tf.Variable(np.full(output_dim, 0.1, np.float32), trainable=False, name="bn/moving_mean")
    module.moving_variance = tf.Variable(np.full(output_dim, 2.0, np.float32), trainable=False, name="bn/moving_variance")

    @tf.function
    def call(images, training=False):
        # Average pooling equals an area resize for sizes divisible by the grid, and unlike
        # ResizeArea it is a TFLite builtin, so the export tests can convert this module.
        pooled = tf.nn.avg_pool2d(images, image_size // grid, image_size // grid, "VALID")
        hidden = tf.matmul(tf.reshape(pooled, [-1, in_dim]) * 4.0 - 2.0, module.kernel) + module.bias
        if not batch_norm:
            return tf.nn.elu(hidden)
        if training:
            mean, variance = tf.nn.moments(hidden, axes=[0])
            module.moving_mean.assign(0.9 * module.moving_mean + 0.1 * mean)
            module.moving_variance.assign(0.9 * module.moving_variance + 0.1 * variance)
        else:
            mean, variance = module.moving_mean, module.moving_variance
        normed = tf.nn.batch_normalization(hidden, mean, variance, module.beta, module.gamma, 1e-3)
        return tf.nn.elu(normed)

    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")
    call.get_concrete_function(spec, True)
    serving = call.get_concrete_function(spec, False)
    module.__call__ = call
    module.variables = [module.kernel, module.bias, module.gamma, module.beta, module.moving_mean, module.moving_variance]
    module.trainable_variables = [module.kernel, module.bias, module.gamma, module.beta]
    module.regularization_losses = [tf.function(lambda: 1e-4 * tf.reduce_sum(tf.square(module.kernel)), input_signature=[])]

    @tf.function(input_signature=[spec])
    def serving_default(images):
        return {"feature_vector": serving(images)}

    path = Path(path)
    tf.saved_model.save(module, str(path), signatures={"serving_default": serving_default})
    return path


def build_text_module(path, output_dim: int = 16, num_buckets: int = 1024, seed: int = 0) -> Path:
    """Save a text-embedding module: tf.string [None] -> float32 [None, output_dim].

    Lower-cases, splits on whitespace, hashes each token into ``num_buckets``
    rows of a trainable table, and takes the sqrt-n weighted sum.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    module = _reusable_module_class()()
    module.embeddings = tf.Variable(
        rng.normal(0.0, 1.0, (num_buckets, output_dim)).astype(np.float32), name="embeddings"
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def call(sentences):
        tokens = tf.strings.split(tf.strings.lower(sentences))
        ids = tf.strings.to_hash_bucket_fast(tokens, num_buckets)
        vectors = tf.gather(module.embeddings, ids)
        total = tf.reduce_sum(vectors, axis=1)
        counts = tf.cast(tokens.row_lengths(), tf.float32)
        return total / tf.sqrt(tf.maximum(counts, 1.0))[:, None]

    module.__call__ = call
    module.variables = [module.embeddings]
    module.trainable_variables = [module.embeddings]
    module.regularization_losses = []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serving_default(sentences):
        return {"embedding": call(sentences)}

    path = Path(path)
    tf.saved_model.save(module, str(path), signatures={"serving_default": serving_default})
    return path


def build_tf1_hub_module(path, image_size: int = 32, output_dim: int = 8, seed: int = 0) -> Path:
    """Save a TF1 Hub format module: ``default`` signature, images -> ``default`` [None, output_dim]."""
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    path = Path(path)
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, image_size, image_size, 3], name="images")
        kernel = v1.get_variable(
            "kernel", initializer=rng.normal(0.0, 0.3, (3, output_dim)).astype(np.float32)
        )
        colour = tf.reduce_mean(images, axis=[1, 2])
        features = tf.nn.relu(tf.matmul(colour, kernel), name="features")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def({"images": images}, {"default": features})
            builder.add_meta_graph_and_variables(session, tags=[], signature_def_map={"default": signature})
            builder.save()
    (path / "tfhub_module.pb").write_bytes(_TFHUB_MODULE_DEF_V3)
    return path


def build_archive(module_dir, archive_path) -> Path:
    """Pack ``module_dir`` as a .tar.gz whose root is the module's contents (``./saved_model.pb``...)."""
    module_dir, archive_path = Path(module_dir), Path(archive_path)
    with tarfile.open(archive_path, "w:gz") as tar:
        for item in sorted(module_dir.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(module_dir)), recursive=False)
    return archive_path
