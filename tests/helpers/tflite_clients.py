"""The runtimes a deployed model meets: MediaPipe Tasks classifiers and the LiteRT interpreter.

Each reads only the ``.tflite`` file, as an app would: MediaPipe takes labels,
normalisation and the tokenizer from the model's metadata; nothing of hubcli
is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _scores(result, count: int) -> tuple[list[str], np.ndarray]:
    categories = result.classifications[0].categories
    scores = np.zeros(count, np.float32)
    names = [""] * count
    for category in categories:
        scores[category.index] = category.score
        names[category.index] = category.category_name
    return names, scores


def mediapipe_images(model: Path, images: Sequence[Path], classes: int) -> tuple[list[str], np.ndarray]:
    """Category names (by index) and scores [n, classes] from MediaPipe's ImageClassifier on image files."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=classes)
    rows, names = [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            names, scores = _scores(classifier.classify(mp.Image.create_from_file(str(path))), classes)
            rows.append(scores)
    return names, np.stack(rows)


def mediapipe_texts(model: Path, sentences: Sequence[str], classes: int) -> tuple[list[str], np.ndarray]:
    """Category names (by index) and scores [n, classes] from MediaPipe's TextClassifier on raw sentences."""
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=classes)
    rows, names = [], []
    with text.TextClassifier.create_from_options(options) as classifier:
        for sentence in sentences:
            names, scores = _scores(classifier.classify(sentence), classes)
            rows.append(scores)
    return names, np.stack(rows)


def litert_outputs(model: Path, inputs: np.ndarray) -> np.ndarray:
    """The first output of the LiteRT interpreter (ai-edge-litert) on float inputs, one example at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for example in inputs:
        interpreter.set_tensor(source["index"], example[None].astype(source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].astype(np.float32))
    return np.stack(outputs)


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.argmax(a, axis=1) == np.argmax(b, axis=1)).mean())
