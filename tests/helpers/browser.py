"""Render a page in a real headless browser (Chromium from the distribution's packages)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 2400) -> np.ndarray:
    """Open ``page`` (file URL, no network) headless and return the screenshot as RGB pixels."""
    from PIL import Image

    browser = find_browser()
    assert browser, "no headless browser installed"
    with tempfile.TemporaryDirectory(prefix="hubcli-browser-") as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",  # tests may run as root in containers
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                Path(page).resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB"))


def pixels_near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels lie within ``tolerance`` of ``colour`` in every channel."""
    return int((np.abs(pixels.astype(int) - np.array(colour)) <= tolerance).all(axis=-1).sum())
