"""The run directory: what ``retrain-images`` and ``classify-text`` write, and everything that reads it.

A run directory holds (names are this module's constants)::

    run.json             RUN_FILE: the record below, read by evaluate, predict and every export
    metrics.json         METRICS_FILE: the training summary ``--json`` prints
    labels.txt           LABELS_FILE: class names in output order, one per line
    model/               SERVING_MODEL_DIR: SavedModel with the serving signatures
    model.keras          KERAS_MODEL_FILE: the Keras model (HubLayer registered as hubcli>HubLayer)
    representative.npz   REPRESENTATIVE_FILE: ``inputs``, sample model inputs for calibration and checks
    plots/, logs/        PLOTS_DIR, LOGS_DIR (logs only with --tensorboard)
    MODEL_CARD.md        MODEL_CARD_FILE: module, data, metrics, training, intended use, limitations
    report.html          REPORT_FILE: the metrics, curves and mistakes as one self-contained page

``run.json`` (schema ``hubcli.run/1``): ``schema``, ``task`` (``"image"`` or ``"text"``),
``module`` (``handle``, ``path``, ``sha256``, ``op_libraries``), ``image_size`` (``[h, w]``
or null), ``preprocessor`` (text runs: a module record or null), ``labels``,
``multi_label`` and ``thresholds`` (one per label, or null for a single-label run; a run
written without them is single-label), ``config``, ``representative`` and ``created``. It is parsed here, once, into a :class:`Run`.

A run is written into a hidden sibling (:func:`staged_run`) and swapped into place complete,
so a reader never sees half a run and a failed run leaves an old one intact.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> output = Path(tempfile.mkdtemp()) / "flowers"
    >>> with staged_run(output) as staging:
    ...     write_run_record(staging, task="image", module={"handle": "m", "path": "/m", "sha256": "0" * 64,
    ...                      "op_libraries": []}, modality_fields={"image_size": [8, 8]}, labels=["a", "b"], config={})
    >>> is_run(output), open_run(output).labels, open_run(output).image_size
    (True, ['a', 'b'], (8, 8))
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hubcli.errors import ExportError, NotFoundError, UsageError
from hubcli.fsio import raise_if_disk_full, swap_into_place

RUN_SCHEMA = "hubcli.run/1"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
LABELS_FILE = "labels.txt"
#: Beside a multi-label export (and packed in a TFLite file): one threshold per line, in labels.txt's order.
THRESHOLDS_FILE = "thresholds.txt"
SERVING_MODEL_DIR = "model"
KERAS_MODEL_FILE = "model.keras"
REPRESENTATIVE_FILE = "representative.npz"
PLOTS_DIR = "plots"
LOGS_DIR = "logs"
MODEL_CARD_FILE = "MODEL_CARD.md"
REPORT_FILE = "report.html"
EXPORT_DIR = "export"

#: Enough samples for a stable agreement figure without slowing a check down.
MAX_SAMPLES = 200


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory (it has a ``run.json``).

    Example:
        >>> is_run("/nonexistent")
        False
    """
    return (Path(path) / RUN_FILE).is_file()


def holds_runs(path: str | os.PathLike) -> bool:
    """A run directory, or a folder of only runs (the default ``runs/``).

    ``cd flowers && hubcli retrain-images .`` writes runs/ beside the class folders;
    their plots must not become a class of images on the next run.
    """
    path = Path(path)
    if is_run(path):
        return True
    children = [child for child in path.iterdir() if not child.name.startswith(".")]
    return bool(children) and all(child.is_dir() and is_run(child) for child in children)


@dataclass(frozen=True)
class Run:
    """A finished run directory, as ``run.json`` describes it."""

    path: Path
    task: str
    labels: list[str]
    image_size: tuple[int, int] | None
    #: File name of the representative inputs inside the run, or None.
    representative: str | None
    #: The module record (``handle``, ``path``, ``sha256``, ``op_libraries``), and a text run's preprocessor.
    module: dict | None = None
    preprocessor: dict | None = None
    #: Module handle -> the directory the run resolved it to (its module and any preprocessor).
    module_paths: dict[str, str] = field(default_factory=dict)
    #: Per-label decision thresholds of a multi-label run; None for a single-label run.
    thresholds: tuple[float, ...] | None = None
    #: When the run was written (ISO 8601), or None for a record without it.
    created: str | None = None

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    @property
    def serving_model(self) -> Path:
        return self.path / SERVING_MODEL_DIR

    @property
    def keras_model(self) -> Path:
        return self.path / KERAS_MODEL_FILE

    @property
    def op_libraries(self) -> list[str]:
        """Op libraries (e.g. ``tensorflow_text``) the run's module and preprocessor need loaded."""
        return [library for part in (self.module, self.preprocessor) for library in (part or {}).get("op_libraries", [])]

    def samples(self, limit: int = MAX_SAMPLES) -> np.ndarray | None:
        """Up to ``limit`` representative inputs as the model takes them (float images or str objects)."""
        if not self.representative:
            return None
        sample_file = self.path / self.representative
        if not sample_file.is_file():
            raise NotFoundError(f"run {self.path} lists {self.representative} but the file is missing")
        with np.load(sample_file, allow_pickle=False) as data:
            samples = data["inputs"][:limit]
        return samples.astype(object) if samples.dtype.kind == "U" else samples

    def load_keras_model(self, path: Path | None = None):
        """The run's ``model.keras`` (or a copy at ``path``), its modules found where the run found them.

        Without that, reloading a hub handle would use this process's default cache and
        mirror, which need not be the ones the run was trained with.
        """
        # Deferred: reading run.json (predict's dispatch, export's checks) must not start TensorFlow.
        import keras

        from hubcli.errors import HubcliError
        from hubcli.train.layer import known_module_paths

        try:
            with known_module_paths(self.module_paths):
                return keras.models.load_model(path or self.keras_model)
        except Exception as err:
            # Keras wraps a layer's own error (module not found, offline...) in a long TypeError.
            cause = err
            while cause is not None and not isinstance(cause, HubcliError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from None
            raise


def open_run(path: str | os.PathLike) -> Run:
    """Read a run directory; ``path`` may also be its ``model/`` or ``model.keras``.

    Example:
        >>> run = open_run("runs/flowers/model.keras")  # doctest: +SKIP
        >>> run.path.name, run.labels[:2]  # doctest: +SKIP
        ('flowers', ['daisy', 'dandelion'])
    """
    given = Path(path)
    if not given.exists():
        raise NotFoundError(f"no run or model at {given}")
    run_dir = given if given.is_dir() and is_run(given) else given.parent
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise NotFoundError(f"{given} is not a hubcli run directory (no run.json); give the directory retrain-images or classify-text wrote")
    try:
        meta = json.loads(run_file.read_text(encoding="utf-8"))
        task, labels = meta["task"], list(meta["labels"])
        thresholds = meta.get("thresholds")
        thresholds = None if thresholds is None else tuple(float(value) for value in thresholds)
        if thresholds is not None and len(thresholds) != len(labels):
            raise ValueError(f"{len(thresholds)} thresholds for {len(labels)} labels")
    except (ValueError, KeyError, TypeError) as err:
        raise ExportError(f"{run_file} is damaged: {err}") from None
    size = meta.get("image_size")
    parts = [part if isinstance(part, dict) else None for part in (meta.get("module"), meta.get("preprocessor"))]
    module_paths = {
        part["handle"]: part["path"]
        for part in parts
        if part and part.get("handle") and part.get("path") and Path(part["path"]).is_dir()
    }
    return Run(
        run_dir, task, labels, tuple(size) if size else None, meta.get("representative"),
        module=parts[0], preprocessor=parts[1], module_paths=module_paths, thresholds=thresholds, created=meta.get("created"),
    )


def default_output(name: str, runs_dir: str | os.PathLike = "runs") -> Path:
    """``runs/<name>``, or ``runs/<name>-2``... when taken: a default never overwrites a run.

    Example:
        >>> default_output("flowers", "/nonexistent/runs")
        PosixPath('/nonexistent/runs/flowers')
    """
    base = Path(runs_dir) / (name or "run")
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def check_output(output: str | os.PathLike, overwrite: bool) -> Path:
    """``output`` as a Path, refusing to replace anything but a run, and a run only with ``overwrite``."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise UsageError(f"{output} already exists; choose another --output or pass --overwrite")
    if output.exists() and not is_run(output):
        raise UsageError(f"{output} exists and is not a hubcli run; refusing to replace it")
    return output


@contextmanager
def staged_run(output: Path) -> Iterator[Path]:
    """Yield a hidden sibling of ``output`` to write a run into; it replaces ``output`` once complete.

    On any failure the staging directory is removed and ``output`` is left as it was; a full
    disk is reported as one :class:`~hubcli.fsio.DiskFullError` line.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        swap_into_place(staging, output)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise_if_disk_full(err, f"the run directory {output}")
        raise


def write_run_record(
    directory: Path, *, task: str, module: dict, modality_fields: dict, labels: Sequence[str], config: dict,
    thresholds: Sequence[float] | None = None,
) -> None:
    """Write ``run.json`` into ``directory``; ``modality_fields`` are the modality's own keys (``image_size``...).

    ``thresholds`` (one per label) make it a multi-label run.
    """
    record = {
        "schema": RUN_SCHEMA,
        "task": task,
        "module": module,
        **modality_fields,
        "labels": list(labels),
        "multi_label": thresholds is not None,
        "thresholds": None if thresholds is None else list(thresholds),
        "config": config,
        "representative": REPRESENTATIVE_FILE,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (directory / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def thresholds_text(thresholds: Sequence[float]) -> str:
    """A multi-label run's thresholds as ``thresholds.txt`` holds them (``repr``, so they round-trip exactly).

    Example:
        >>> thresholds_text([0.5, 0.25])
        '0.5\\n0.25\\n'
    """
    return "".join(f"{value!r}\n" for value in thresholds)
