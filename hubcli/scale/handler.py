"""The Beam ``ModelHandler`` of ``hubcli extract``: a frozen module's features, as local extraction computes them.

Beam's stock ``TFModelHandlerNumpy`` loads models through Keras, which Keras 3 refuses for
SavedModels. This handler runs the engine the launcher chose as ``retrain-images`` would
(:mod:`hubcli.train.engines`): TensorFlow, on the module resolved by its handle, checked
against the launcher's content digest and wrapped in the same encoder layer, or the
converted TFLite flatbuffer the launcher accepted. Either way a feature computed on a Beam
worker is the feature ``retrain-images`` would have computed and cached under the same key.

Example:
    >>> handler = FeatureModelHandler(module_handle="efficientnet_lite0", module_sha256="5be1...",  # doctest: +SKIP
    ...                               settings=settings, image_size=(224, 224), batch_size=32)
    >>> beam.Map(...) | RunInference(KeyedModelHandler(handler))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from hubcli.config import Settings
from hubcli.errors import IntegrityError


class FeatureModelHandler(ModelHandler[np.ndarray, np.ndarray, object]):
    """uint8 images [h, w, 3] in, float32 feature vectors out; one module per worker process."""

    def __init__(
        self, *, module_handle: str, module_sha256: str, settings: Settings, image_size: tuple[int, int], batch_size: int, tflite: bytes | None = None
    ):
        # Beam sizes batches adaptively between these; both engines compute a feature the same
        # whatever batch it comes in, so any size gives what local batches of `batch_size` give.
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.module_handle = module_handle
        self.module_sha256 = module_sha256
        self.settings = settings
        self.image_size = tuple(image_size)
        self.tflite = tflite

    def load_model(self):
        from hubcli import quiet_tensorflow

        quiet_tensorflow.install()  # a worker process imports TensorFlow here, first
        from hubcli.train.engines import TensorFlowEngine, TFLiteEngine, frozen_forward
        from hubcli.train.images import ImageModality
        from hubcli.train.module_ref import ModuleRef

        if self.tflite is not None:
            return TFLiteEngine(self.tflite, workers=1)  # Beam runs one worker per core already

        module = ModuleRef.resolve(self.module_handle, self.settings)
        if module.sha256 != self.module_sha256:
            raise IntegrityError(
                f"module {self.module_handle} on this worker has content {module.sha256[:12]}, not the launcher's "
                f"{self.module_sha256[:12]}; its features would not match the cache key"
            )
        modality = ImageModality(self.image_size)
        return TensorFlowEngine(frozen_forward(modality.build_encoder(module, trainable=False), modality))

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> list[np.ndarray]:
        return list(model.run(np.stack(batch)))

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(image.nbytes for image in batch)

    def get_metrics_namespace(self) -> str:
        return "hubcli.model"
