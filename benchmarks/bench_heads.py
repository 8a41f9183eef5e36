"""Benchmark the classifier heads: ``--head fixed`` vs ``--head auto`` vs a plain logistic-regression probe.

Parts (choose with ``--parts``):

heads     On flowers-mini (EfficientNet-Lite0) and the UCI sentiment sentences (MiniLM), the same
          stable hash splits for every contender: test accuracy of ``--head fixed`` (the Keras head),
          of ``--head auto`` (L2 chosen by 5-fold cross-validation, refitted on training+validation)
          and of the probe every paper uses as the baseline: L-BFGS multinomial logistic regression
          with scikit-learn's default strength (C = 1, i.e. l2 = 1 / n) on the same features.
          Also the selection time (``selection_time_s``) and each run's training time.
design    What ``--head auto`` was built from: nested 5-fold cross-validation (selection inside
          each outer fold) of all labelled examples, comparing the plain solver with the fixed
          Keras head, standardised features, label smoothing 0.1 and, for images, horizontally
          flipped copies (as training rows, as test-time averaging, or as averaged features).
finetune  flowers-mini: ``--head auto`` then ``--fine-tune`` (warm start, warm-up + cosine, early
          stopping), all of the module and only its top layers: test accuracy and time.

Only the accuracies mean anything on a busy machine; run it on a quiet one for the times.

Run:
    .venv/bin/python -m benchmarks.bench_heads                       # heads and design
    .venv/bin/python -m benchmarks.bench_heads --parts finetune --json heads.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DATA = {"image": REPO.parent / "shared" / "datasets" / "flowers-mini", "text": REPO.parent / "shared" / "datasets" / "sentiment" / "imdb_labelled.txt"}
MODULES = {"image": REPO / ".modules" / "efficientnet_lite0_feature_vector", "text": REPO / ".modules" / "minilm_l6_v2"}
IMAGE_SPLITS = {"validation_split": 0.1, "test_split": 0.1}
TEXT_SPLITS = {"validation_split": 0.1, "test_split": 0.2}


def _settings(cache: Path):
    from hubcli.config import Settings

    return Settings.load(cache_dir=cache, offline=True)


def _train(task: str, cache: Path, output: Path, **options) -> dict:
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import retrain_images
    from hubcli.train.text import classify_text

    config = TrainConfig(**options)
    if task == "image":
        return retrain_images(DATA["image"], str(MODULES["image"]), settings=_settings(cache), config=config, output=output, overwrite=True, **IMAGE_SPLITS)
    return classify_text(DATA["text"], str(MODULES["text"]), settings=_settings(cache), config=config, output=output, overwrite=True, **TEXT_SPLITS)


def _features(task: str, cache: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], object, object]:
    """Cached features and labels per split (the same splits and cache the runs used), the modality and the encoder."""
    from hubcli.train.features import frozen_extractor
    from hubcli.train.images import ImageModality, load_image_folder
    from hubcli.train.module_ref import ModuleRef
    from hubcli.train.text import TextModality
    from hubcli.train.text_dataset import load_text_dataset

    settings = _settings(cache)
    if task == "image":
        data = load_image_folder(DATA["image"], **IMAGE_SPLITS)
        module = ModuleRef.resolve(str(MODULES["image"]), settings)
        modality = ImageModality(module.info.image_size)
    else:
        data = load_text_dataset(DATA["text"]).split(**TEXT_SPLITS)
        module = ModuleRef.resolve(str(MODULES["text"]), settings)
        modality = TextModality()
    encoder = modality.build_encoder(module, trainable=False)
    extractor = frozen_extractor(modality=modality, encoder=encoder, module=module, examples=len(data.all_examples()))
    x, y = {}, {}
    for split in ("train", "validation", "test"):
        examples = getattr(data, split)
        x[split], kept = extractor.features(examples)
        y[split] = np.asarray([examples[i].label for i in kept])
    return x, y, (data, modality), encoder


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return round(float((probabilities.argmax(axis=1) == labels).mean()), 4)


def bench_heads(task: str, work: Path) -> dict:
    """Test accuracy of the fixed head, the auto head and the plain probe on one split."""
    from hubcli.train.logistic import fit_linear, predict_probabilities

    cache = work / "cache"
    fixed = _train(task, cache, work / f"{task}-fixed", head="fixed")
    auto = _train(task, cache, work / f"{task}-auto", head="auto")
    x, y, _, _ = _features(task, cache)
    x_fit, y_fit = np.concatenate([x["train"], x["validation"]]), np.concatenate([y["train"], y["validation"]])
    started = time.perf_counter()
    probe = fit_linear(x_fit, np.eye(int(y_fit.max()) + 1)[y_fit], l2=1.0 / len(y_fit))
    probe_seconds = time.perf_counter() - started
    return {
        "splits": auto["splits"],
        "fixed_test_accuracy": fixed["accuracy"],
        "fixed_training_time_s": fixed["training_time_s"],
        "auto_test_accuracy": auto["accuracy"],
        "auto_cv": auto["selection"]["cv"],
        "auto_l2": auto["selection"]["l2"],
        "auto_selection_time_s": auto["selection"]["selection_time_s"],
        "probe_test_accuracy": _accuracy(predict_probabilities(x["test"], probe), y["test"]),
        "probe_fit_time_s": round(probe_seconds, 3),
    }


def bench_design(task: str, work: Path) -> dict:
    """Nested cross-validated accuracy of the solver's variants on all labelled examples."""
    from hubcli.train.folds import stratified_folds
    from hubcli.train.logistic import fit_linear, predict_probabilities
    from hubcli.train.selection import L2_GRID

    x, y, (data, modality), encoder = _features(task, work / "cache")
    features = np.concatenate([x[s] for s in ("train", "validation", "test")]).astype(np.float64)
    labels = np.concatenate([y[s] for s in ("train", "validation", "test")])
    flipped = _flipped_features(data, modality, encoder) if task == "image" else None
    classes = int(labels.max()) + 1

    def fixed_head(rows, held):
        """The Keras head as --head fixed trains it, 1 in 9 of its training rows validating its early stopping."""
        import keras

        from hubcli.train.config import TrainConfig
        from hubcli.train.head import build_head, fit_head, one_hot

        config = TrainConfig(head="fixed")
        validation = stratified_folds(labels[rows], folds=9, seed=0) == 0
        fit, check = rows[~validation], rows[validation]
        keras.utils.set_random_seed(0)
        head = build_head(features.shape[1], classes, config)
        fit_head(head, (features[fit], one_hot(labels[fit], classes)), (features[check], one_hot(labels[check], classes)), config=config)
        return head.predict(features[held], verbose=0)

    def fit_predict(rows, held, l2, variant):
        x_fit, y_fit, x_held = features[rows], labels[rows], features[held]
        if variant in ("flip_rows", "flip_tta"):
            x_fit, y_fit = np.concatenate([x_fit, flipped[rows]]), np.concatenate([y_fit, y_fit])
        if variant == "flip_average":
            x_fit, x_held = (x_fit + flipped[rows]) / 2, (x_held + flipped[held]) / 2
        if variant == "standardised":
            mean, scale = x_fit.mean(axis=0), np.where(x_fit.std(axis=0) > 1e-12, x_fit.std(axis=0), 1.0)
            x_fit, x_held = (x_fit - mean) / scale, (x_held - mean) / scale
        smoothing = 0.1 if variant == "label_smoothing" else 0.0
        targets = np.eye(classes)[y_fit] * (1 - smoothing) + smoothing / classes
        head = fit_linear(x_fit, targets, l2=l2)
        probabilities = predict_probabilities(x_held, head)
        if variant == "flip_tta":
            probabilities = (probabilities + predict_probabilities(flipped[held], head)) / 2
        return probabilities

    def nested(variant):
        outer = stratified_folds(labels, folds=5, seed=100)
        scores = []
        for j in range(5):
            rows, held = np.flatnonzero(outer != j), np.flatnonzero(outer == j)
            if variant == "fixed_head":
                scores.append(_accuracy(fixed_head(rows, held), labels[held]))
                continue
            inner = stratified_folds(labels[rows], folds=5, seed=0)
            grid_scores = [
                np.mean([
                    _accuracy(fit_predict(rows[inner != i], rows[inner == i], l2, variant), labels[rows[inner == i]]) for i in range(5)
                ])
                for l2 in L2_GRID
            ]
            chosen = L2_GRID[int(np.argmax(grid_scores))]
            scores.append(_accuracy(fit_predict(rows, held, chosen, variant), labels[held]))
        return round(float(np.mean(scores)), 4)

    variants = ["fixed_head", "plain", "standardised", "label_smoothing"] + (["flip_rows", "flip_tta", "flip_average"] if flipped is not None else [])
    return {"examples": int(len(labels)), "nested_cv_accuracy": {variant: nested(variant) for variant in variants}}


def _flipped_features(data, modality, encoder) -> np.ndarray:
    """Features of every image flipped left-right, in the order train, validation, test."""
    import tensorflow as tf

    from hubcli.train.batches import in_batches
    from hubcli.train.features import raw_inputs

    raw = np.concatenate([raw_inputs(modality, getattr(data, s), 32) for s in ("train", "validation", "test")])
    forward = lambda batch: encoder(modality.model_inputs(tf.constant(np.ascontiguousarray(batch[:, :, ::-1]))), training=False)  # noqa: E731
    return in_batches(forward, raw, batch_size=32).astype(np.float64)


def bench_finetune(work: Path, epochs: int, unfreeze: str) -> dict:
    """flowers-mini: the auto head, then fine-tuning all of the module and only its top layers."""
    frozen = _train("image", work / "cache", work / "ft-frozen")
    results = {"frozen_test_accuracy": frozen["accuracy"]}
    for name, layers in (("all", "all"), (f"top_{unfreeze}", unfreeze)):
        started = time.perf_counter()
        tuned = _train("image", work / "cache", work / f"ft-{name}", fine_tune=True, fine_tune_epochs=epochs, unfreeze=layers)
        results[name] = {
            "test_accuracy": tuned["accuracy"],
            "validation_accuracy": tuned["validation_accuracy"],
            "epochs_run": tuned["epochs_run"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="heads,design", help="comma-separated: heads, design, finetune")
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--unfreeze", default="40", help="top layers for the partial fine-tuning run")
    parser.add_argument("--modules", type=Path, default=REPO / ".modules", help="where make modules built them")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets", help="holds flowers-mini/ and sentiment/")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    MODULES.update(image=args.modules / MODULES["image"].name, text=args.modules / MODULES["text"].name)
    DATA.update(image=args.datasets / "flowers-mini", text=args.datasets / "sentiment" / "imdb_labelled.txt")
    for needed in (*DATA.values(), *MODULES.values()):
        if not needed.exists():
            raise SystemExit(f"missing {needed}: build the modules (make modules) and put ../shared/datasets beside the repository")
    parts = set(args.parts.split(","))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-heads-") as work:
        work = Path(work)
        for task, name in (("image", "flowers"), ("text", "sentiment")):
            if "heads" in parts:
                results.setdefault(name, {})["heads"] = bench_heads(task, work)
            if "design" in parts:
                results.setdefault(name, {})["design"] = bench_design(task, work)
        if "finetune" in parts:
            results["flowers_fine_tune"] = bench_finetune(work, args.fine_tune_epochs, args.unfreeze)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
