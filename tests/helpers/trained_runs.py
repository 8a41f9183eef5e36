"""Finished runs of the tiny modules, for tests that read a run directory (export, publish...).

Each trains a real model on learnable synthetic data in a few seconds; the session-scoped
``image_run`` and ``text_run`` fixtures in ``tests/conftest.py`` build each one once.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import synthetic_images, text_corpus


def train_image_run(module: Path, root: Path) -> Path:
    """A retrain-images run that also fine-tuned ``module`` (so its weights moved); returns the run directory."""
    from hubcli.config import Settings
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import retrain_images

    data = synthetic_images.make_image_dataset(root / "data", per_class=12)
    settings = Settings.load(cache_dir=root / "cache", offline=True)
    config = TrainConfig(epochs=30, learning_rate=0.05, fine_tune=True, fine_tune_epochs=2, seed=0)
    summary = retrain_images(data, str(module), settings=settings, config=config, output=root / "run")
    assert summary["accuracy"] >= 0.9, "the shared image run must have learned its classes"
    return root / "run"


def train_text_run(module: Path, root: Path) -> Path:
    """A classify-text run on the tiny hashed bag-of-words ``module``; returns the run directory."""
    from hubcli.config import Settings
    from hubcli.train.config import TrainConfig
    from hubcli.train.text import classify_text

    data = text_corpus.write_tab_lines(root / "data.txt", text_corpus.corpus(per_class=24))
    settings = Settings.load(cache_dir=root / "cache", offline=True)
    config = TrainConfig(epochs=30, learning_rate=0.05)
    summary = classify_text(data, str(module), settings=settings, config=config, output=root / "run")
    assert summary["accuracy"] >= 0.9, "the shared text run must have learned its classes"
    return root / "run"
