"""The Beam ``ModelHandler`` of ``hubcli extract``: a frozen module's features, as local extraction computes them.

Beam's stock ``TFModelHandlerNumpy`` loads models through Keras, which Keras 3 refuses for
SavedModels. This handler loads the module the way ``retrain-images`` does (resolved by its
handle, checked against the launcher's content digest, wrapped in the same encoder layer)
and runs the very forward function of local extraction, so a feature computed on a Beam
worker is the feature ``retrain-images`` would have computed and cached.

Example:
    >>> handler = FeatureModelHandler(module_handle="efficientnet_lite0", module_sha256="5be1...",  # doctest: +SKIP
    ...                               settings=settings, image_size=(224, 224), batch_size=32)
    >>> beam.Map(...) | RunInference(KeyedModelHandler(handler))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from hubcli.config import Settings
from hubcli.errors import IntegrityError


class FeatureModelHandler(ModelHandler[np.ndarray, np.ndarray, Callable]):
    """uint8 images [h, w, 3] in, float32 feature vectors out; one module per worker process."""

    def __init__(self, *, module_handle: str, module_sha256: str, settings: Settings, image_size: tuple[int, int], batch_size: int):
        # Beam sizes batches adaptively between these; the forward function pads a batch of
        # one, so any size gives the features that local batches of `batch_size` give.
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.module_handle = module_handle
        self.module_sha256 = module_sha256
        self.settings = settings
        self.image_size = tuple(image_size)

    def load_model(self) -> Callable[[np.ndarray], np.ndarray]:
        from hubcli import quiet_tensorflow

        quiet_tensorflow.install()  # a worker process imports TensorFlow here, first
        from hubcli.train.features import frozen_forward
        from hubcli.train.images import ImageModality
        from hubcli.train.module_ref import ModuleRef

        module = ModuleRef.resolve(self.module_handle, self.settings)
        if module.sha256 != self.module_sha256:
            raise IntegrityError(
                f"module {self.module_handle} on this worker has content {module.sha256[:12]}, not the launcher's "
                f"{self.module_sha256[:12]}; its features would not match the cache key"
            )
        modality = ImageModality(self.image_size)
        return frozen_forward(modality, modality.build_encoder(module, trainable=False))

    def run_inference(self, batch: Sequence[np.ndarray], model: Callable[[np.ndarray], np.ndarray], inference_args=None) -> list[np.ndarray]:
        return list(model(np.stack(batch)))

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(image.nbytes for image in batch)

    def get_metrics_namespace(self) -> str:
        return "hubcli.model"
