"""Measure how real clients see hubcli's exports: MediaPipe Tasks, LiteRT and onnxruntime on real photos and sentences.

1. Images: retrains a frozen flowers classifier on the EfficientNet-Lite0 feature-vector
   module (``make modules``), holding out ``--test-split`` of the photos (stable hash
   split), and exports every TFLite variant (``none``, ``dynamic``, ``float16``, ``int8``)
   and ONNX. For each TFLite variant: file size, the export's own agreement check,
   MediaPipe's ``ImageClassifier`` on the held-out photo files (its own decoding,
   resizing and the metadata's normalisation) against ``hubcli predict`` on the same
   files, held-out accuracy through MediaPipe and through LiteRT, and the median time
   of one MediaPipe ``classify`` call. For ONNX: size, agreement, held-out accuracy
   through onnxruntime.
2. Text: classify-text with the MiniLM module on the UCI sentiment sentences; every
   TFLite variant of the token-id model with MediaPipe's ``TextClassifier`` tokenizing
   the held-out raw sentences, against ``hubcli predict --text``.

Run (``--only image`` or ``--only text`` for one half):
    .venv/bin/python -m benchmarks.bench_clients
    .venv/bin/python -m benchmarks.bench_clients --only text --json --work /tmp/bench_clients
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE_MODULE = ROOT / ".modules" / "efficientnet_lite0_feature_vector"
DEFAULT_TEXT_MODULE = ROOT / ".modules" / "minilm_l6_v2"
DEFAULT_IMAGES = Path("/work/shared/datasets/flowers-mini")
DEFAULT_TEXTS = Path("/work/shared/datasets/sentiment/imdb_labelled.txt")
MODES = ("none", "dynamic", "float16", "int8")


def _top1(rows: np.ndarray, labels: list[str]) -> list[str]:
    return [labels[i] for i in np.argmax(rows, axis=1)]


def _rate(a: list[str], b: list[str]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def _predicted(run: Path, items: list[str]) -> list[str]:
    from hubcli.train.inference import predict

    return [p["top"][0]["label"] for p in predict(run, items)["predictions"]]


def _timed_mediapipe(classify, items, count: int = 30) -> float:
    """Median milliseconds of one classify call over the first ``count`` items (after one warm-up)."""
    classify(items[0])
    samples = []
    for item in items[:count]:
        start = time.perf_counter()
        classify(item)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _mediapipe_answers(create, call, items) -> tuple[list[str], float]:
    """Top-1 names of a MediaPipe classifier (``create()``, ``call(classifier, item)``) over ``items``, and its median ms."""
    with create() as classifier:

        def classify(item):
            return call(classifier, item).classifications[0].categories[0].category_name

        return [classify(item) for item in items], _timed_mediapipe(classify, items)


def _variant(mode: str, result, client: list[str], ours: list[str], truth: list[str], latency: float) -> dict:
    return {
        "variant": f"tflite {mode}",
        "size_bytes": result.size_bytes,
        "export_check": result.agreement.to_json(),
        "mediapipe_agreement_with_predict": _rate(client, ours),
        "mediapipe_accuracy": _rate(client, truth),
        "mediapipe_classify_ms_median": round(latency, 2),
    }


def image_report(module: Path, data: Path, work: Path, validation_split: float, test_split: float) -> dict:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from benchmarks.bench_tflite import _held_out, _tflite_runner
    from hubcli.config import Settings
    from hubcli.export.artifacts import export_run
    from hubcli.export.onnx import run_onnx
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import load_image_folder, retrain_images
    from hubcli.train.rundir import open_run

    run = work / "flowers"
    summary = retrain_images(
        data, str(module), settings=Settings.load(cache_dir=work / "cache", offline=True), config=TrainConfig(),
        output=run, overwrite=True, validation_split=validation_split, test_split=test_split,
    )
    labels = open_run(run).labels
    split = load_image_folder(data, validation_split, test_split)
    files = [str(example.source) for example in split.test]
    truth = [split.labels[example.label] for example in split.test]
    ours = _predicted(run, files)
    images, _ = _held_out(data, open_run(run).image_size, validation_split, test_split)
    rows = []
    for mode in MODES:
        result = export_run(run, "tflite", output=work / "export" / f"flowers_{mode}.tflite", quantize=mode, min_agreement=0.0, overwrite=True)
        options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(result.path)), max_results=1)
        client, latency = _mediapipe_answers(
            lambda options=options: vision.ImageClassifier.create_from_options(options),
            lambda classifier, path: classifier.classify(mp.Image.create_from_file(path)),
            files,
        )
        one = _tflite_runner(result.path, 1)
        litert = _top1(np.stack([one(image) for image in images]), labels)
        rows.append({**_variant(mode, result, client, ours, truth, latency), "interpreter_accuracy": _rate(litert, truth)})
    onnx = export_run(run, "onnx", output=work / "export" / "flowers.onnx", min_agreement=0.0, overwrite=True)
    onnx_predicted = _top1(run_onnx(onnx.path.read_bytes(), images), labels)
    rows.append({
        "variant": "onnx",
        "size_bytes": onnx.size_bytes,
        "export_check": onnx.agreement.to_json(),
        "onnxruntime_agreement_with_predict": _rate(onnx_predicted, ours),
        "onnxruntime_accuracy": _rate(onnx_predicted, truth),
    })
    return {"module": str(module), "held_out": len(files), "run_accuracy": summary["accuracy"], "predict_accuracy": _rate(ours, truth),
            "model_card": str(work / "export" / "MODEL_CARD.md"), "variants": rows}


def text_report(module: Path, data: Path, work: Path, validation_split: float, test_split: float) -> dict:
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from hubcli.config import Settings
    from hubcli.export.artifacts import export_run
    from hubcli.train.config import TrainConfig
    from hubcli.train.text import classify_text
    from hubcli.train.text_dataset import load_text_dataset

    run = work / "sentiment"
    summary = classify_text(
        data, str(module), settings=Settings.load(cache_dir=work / "cache", offline=True), config=TrainConfig(),
        output=run, overwrite=True, validation_split=validation_split, test_split=test_split,
    )
    split = load_text_dataset(data).split(validation_split, test_split)
    sentences = [str(example.source) for example in split.test]
    truth = [split.labels[example.label] for example in split.test]
    ours = _predicted(run, sentences)
    rows = []
    for mode in MODES:
        result = export_run(run, "tflite", output=work / "export" / f"sentiment_{mode}.tflite", quantize=mode, min_agreement=0.0, overwrite=True)
        options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(result.path)), max_results=1)
        client, latency = _mediapipe_answers(
            lambda options=options: text.TextClassifier.create_from_options(options),
            lambda classifier, sentence: classifier.classify(sentence),
            sentences,
        )
        rows.append(_variant(mode, result, client, ours, truth, latency))
    return {"module": str(module), "held_out": len(sentences), "run_accuracy": summary["accuracy"], "predict_accuracy": _rate(ours, truth),
            "model_card": str(work / "export" / "MODEL_CARD.md"), "variants": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("image", "text"), default=None)
    parser.add_argument("--image-module", type=Path, default=DEFAULT_IMAGE_MODULE)
    parser.add_argument("--text-module", type=Path, default=DEFAULT_TEXT_MODULE)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS)
    parser.add_argument("--work", type=Path, default=None, help="keep the runs and exports here (default: a temp dir)")
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_clients-"))
    halves = {"image": (args.image_module, args.images, image_report), "text": (args.text_module, args.texts, text_report)}
    report = {}
    for name, (module, data, measure) in halves.items():
        if args.only not in (None, name):
            continue
        for needed in (module, data):
            if not needed.exists():
                raise SystemExit(f"missing {needed} (modules come from `make modules`)")
        report[name] = measure(module, data, work / name, args.validation_split, args.test_split)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, part in report.items():
            print(f"== {name}: {part['held_out']} held-out examples, hubcli predict accuracy {part['predict_accuracy']:.3f}; card {part['model_card']}")
            for row in part["variants"]:
                figures = {key: value for key, value in row.items() if key not in ("variant", "export_check")}
                print(f"{row['variant']:16} export agreement {row['export_check']['top1_agreement']:.3f}  {figures}")
    return report


if __name__ == "__main__":
    main()
