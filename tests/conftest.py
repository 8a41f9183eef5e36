"""Shared fixtures: tiny real modules built once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Keep TF's C++ logging out of test output; it is noise, not signal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Catalog names fall back on the local modules registry: tests see an empty one, never the developer's.
os.environ["HUBCLI_MODULES_DIR"] = tempfile.mkdtemp(prefix="hubcli-test-modules-")
atexit.register(shutil.rmtree, os.environ["HUBCLI_MODULES_DIR"], True)

from tests.helpers import tiny_modules  # noqa: E402


@pytest.fixture(scope="session")
def tiny_image_module(tmp_path_factory):
    return tiny_modules.build_image_module(tmp_path_factory.mktemp("modules") / "tiny_image")


@pytest.fixture(scope="session")
def tiny_text_module(tmp_path_factory):
    return tiny_modules.build_text_module(tmp_path_factory.mktemp("modules") / "tiny_text")


@pytest.fixture(scope="session")
def tiny_tf1_module(tmp_path_factory):
    return tiny_modules.build_tf1_hub_module(tmp_path_factory.mktemp("modules") / "tiny_tf1")


@pytest.fixture(scope="session")
def tiny_image_archive(tiny_image_module, tmp_path_factory):
    return tiny_modules.build_archive(tiny_image_module, tmp_path_factory.mktemp("archives") / "tiny_image.tar.gz")


@pytest.fixture(scope="session")
def tiny_text_archive(tiny_text_module, tmp_path_factory):
    return tiny_modules.build_archive(tiny_text_module, tmp_path_factory.mktemp("archives") / "tiny_text.tar.gz")


@pytest.fixture(scope="session")
def tiny_tf1_archive(tiny_tf1_module, tmp_path_factory):
    return tiny_modules.build_archive(tiny_tf1_module, tmp_path_factory.mktemp("archives") / "tiny_tf1.tar.gz")


@pytest.fixture(scope="session")
def image_run(tiny_image_module, tmp_path_factory):
    """A finished retrain-images run that fine-tuned the tiny image module. Copy it before changing it."""
    from tests.helpers import trained_runs

    return trained_runs.train_image_run(tiny_image_module, tmp_path_factory.mktemp("image_run"))


@pytest.fixture(scope="session")
def text_run(tiny_text_module, tmp_path_factory):
    """A finished classify-text run on the tiny text module. Copy it before changing it."""
    from tests.helpers import trained_runs

    return trained_runs.train_text_run(tiny_text_module, tmp_path_factory.mktemp("text_run"))
