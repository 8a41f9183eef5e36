"""Image features, and the ``--head auto`` fit on them, computed while the run imports TensorFlow.

Before a frozen image run imports TensorFlow and loads its module (seconds of mostly one
core), it starts a helper process that never imports TensorFlow: it decodes the photos,
runs the module's accepted TFLite engine under LiteRT (:mod:`hubcli.train.engines`), stores
the features in the feature cache, and fits the automatic head on them (on a second thread
while it extracts the test split, which the head never sees). The run then finds
every feature cached, and takes the helper's head only if it was fitted on exactly the
features and labels the run itself holds (a digest of both), so the run's results are
those it would compute alone.

The helper is only ever a head start. It is not started where it cannot help (no LiteRT,
no accepted engine yet, fine-tuning, images held in memory rather than files, a cache that
cannot be written), and if it fails in any way the run does the work itself, silently.

Example:
    >>> prefetch = Prefetch.start(data, modality, module=module, config=config)  # doctest: +SKIP
    >>> # ... import TensorFlow, load the module ...
    >>> result = prefetch.result()  # doctest: +SKIP
    >>> result.stats.features_computed, result.choice is not None  # doctest: +SKIP
    (498, True)
    >>> prefetch.close()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubcli import console
from hubcli.fsio import write_bytes_atomic
from hubcli.train.config import TrainConfig
from hubcli.train.engines import EngineRecord, TFLiteEngine, accepted_flatbuffer, engine_paths, litert_available
from hubcli.train.feature_cache import FeatureCache, features_root
from hubcli.train.feature_stream import memory_budget, should_stream
from hubcli.train.features import ExtractionStats, FeatureExtractor
from hubcli.train.labeling import label_kind
from hubcli.train.module_ref import ModuleRef
from hubcli.train.resources import peak_rss_mb
from hubcli.train.selection import HeadChoice, select_head, selection_arrays
from hubcli.train.splits import SPLITS, Example, LabeledData

_REQUEST, _RESULT = "request.pickle", "result.pickle"
#: What a frozen run holds once TensorFlow and an image module are loaded (about 1.1 GB measured
#: with EfficientNet-Lite0): the helper, deciding before that, keeps it out of the memory budget.
TENSORFLOW_RUN_BYTES = 1 << 30


def features_digest(x: np.ndarray, y: np.ndarray) -> str:
    """A digest of a head's training features and labels: the same arrays give the same digest.

    Example:
        >>> features_digest(np.ones((2, 3), np.float32), np.array([0, 1])) == features_digest(np.ones((2, 3), np.float32), np.array([0, 1]))
        True
    """
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


@dataclass
class _Request:
    """What the helper needs: the examples of each split and how the run keys and fits them."""

    splits: dict[str, list[Example]]
    num_labels: int
    image_size: tuple[int, int]
    preprocessing: str
    hashes: dict[str, str]
    cache_dir: str
    module_digest: str
    batch_size: int
    #: Hold the features and fit the automatic head (False: only fill the cache).
    fit_head: bool
    multi_label: bool
    class_weight: str
    seed: int
    quiet: bool


@dataclass
class PrefetchResult:
    """What the helper did: its extraction, and the automatic head it fitted (if asked and all was readable)."""

    stats: ExtractionStats
    choice: HeadChoice | None
    #: :func:`features_digest` of the features and labels ``choice`` was fitted on.
    head_digest: str | None
    #: The helper's own peak resident memory, which the run's figure adds to its own.
    peak_rss_mb: float

    def choice_for(self, x: np.ndarray, y: np.ndarray) -> HeadChoice | None:
        """The helper's head, if it was fitted on exactly these features and labels."""
        if self.choice is None or self.head_digest != features_digest(x, y):
            return None
        return self.choice


class Prefetch:
    """A running helper process (see the module docstring); :meth:`result` waits for it."""

    def __init__(self, process: subprocess.Popen, folder: Path):
        self._process = process
        self._folder = folder
        self._result: PrefetchResult | None = None

    @classmethod
    def start(cls, data: LabeledData, modality, *, module: ModuleRef, config: TrainConfig) -> Prefetch | None:
        """Start the helper for a run on ``data``, or None where it cannot help."""
        examples = data.all_examples()
        if not _worthwhile(examples, modality, module=module, config=config):
            return None
        rows, dim = len(examples), module.info.output_dim or 0
        # Judged before TensorFlow is loaded, so leave room for what the run will hold once it is.
        budget = memory_budget(config.max_memory) - TENSORFLOW_RUN_BYTES
        request = _Request(
            splits={name: getattr(data, name) for name in SPLITS if getattr(data, name)},
            num_labels=len(data.labels),
            image_size=modality.image_size,
            preprocessing=modality.preprocessing,
            hashes={example.key: modality.content_hash(example) for example in examples},
            cache_dir=str(module.settings.cache_dir),
            module_digest=module.sha256,
            batch_size=config.extraction_batch_size,
            fit_head=config.head == "auto" and not config.augment_copies and not should_stream(rows=rows, dim=dim, max_memory=budget),
            multi_label=config.multi_label,
            class_weight=config.class_weight,
            seed=config.seed,
            quiet=console.is_quiet(),
        )
        folder = None
        try:
            folder = Path(tempfile.mkdtemp(prefix="hubcli-prefetch-"))
            (folder / _REQUEST).write_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            # -P: never import from the working directory (a dataset folder may hold any .py file).
            # Its own session: Ctrl-C stops the run, whose close() stops the helper. Its stdin
            # stays open as long as the run lives: the helper stops when it reads end-of-file.
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "hubcli.train.prefetch", str(folder)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True, env=_helper_environment(),
            )
        except (OSError, pickle.PicklingError, TypeError):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return None
        return cls(process, folder)

    def running(self) -> bool:
        """Whether the helper is still at work."""
        return self._process.poll() is None

    def result(self) -> PrefetchResult | None:
        """Wait for the helper; what it did, or None if it failed (the run then computes everything)."""
        if self._result is None and self._process.wait() == 0:
            self._result = self._read_result()
        # Read once: nothing of the helper's needs to outlive this (a run killed later leaves no files).
        shutil.rmtree(self._folder, ignore_errors=True)
        return self._result

    def _read_result(self) -> PrefetchResult | None:
        try:
            result = pickle.loads((self._folder / _RESULT).read_bytes())
        except Exception:  # noqa: BLE001 - a result that cannot be read is no result: the run does the work
            return None
        if not (isinstance(result, PrefetchResult) and isinstance(result.stats, ExtractionStats)):
            return None
        if result.choice is not None and not (isinstance(result.choice, HeadChoice) and isinstance(result.head_digest, str)):
            return None
        return result

    def close(self) -> None:
        """Stop the helper if it still runs (it removes a shard it was writing), and remove its files."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def _helper_environment() -> dict[str, str]:
    """This environment, plus the folder this very hubcli was imported from where ``-P`` would lose it."""
    import hubcli

    root = str(Path(hubcli.__file__).resolve().parent.parent)
    environment = dict(os.environ)
    if root == os.getcwd() or root not in sys.path:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environment.get("PYTHONPATH")]))
    return environment


def _worthwhile(examples: list[Example], modality, *, module: ModuleRef, config: TrainConfig) -> bool:
    if not (litert_available() and examples and modality.task == "image"):
        return False
    if config.fine_tune or config.distribute:
        return False
    # Images given as bytes (TFDS) would have to be copied to the helper.
    if not all(isinstance(example.source, (str, os.PathLike)) for example in examples):
        return False
    root = features_root(module.settings.cache_dir)
    record = EngineRecord.read(engine_paths(root, module.sha256, modality.preprocessing)[0])
    return record is not None and record.accepted and _writable(root)


def _writable(path: Path) -> bool:
    """Whether ``path`` (or the nearest folder above it that exists) can be written."""
    for folder in (path, *path.parents):
        if folder.exists():
            return os.access(folder, os.W_OK | os.X_OK)
    return False


def _run(request: _Request) -> PrefetchResult | None:
    """The helper's work; None when it cannot do it as the run would (another decoder, no engine)."""
    from hubcli.train.images import ImageModality

    console.set_quiet(request.quiet)
    modality = ImageModality(request.image_size)
    if modality.preprocessing != request.preprocessing:
        return None
    modality.remember_hashes(request.hashes)
    root = features_root(request.cache_dir)
    flatbuffer = accepted_flatbuffer(features_dir=root, module_digest=request.module_digest, preprocessing=modality.preprocessing)
    if flatbuffer is None:
        return None
    engine = TFLiteEngine(flatbuffer)
    cache = FeatureCache(root, request.module_digest, modality.preprocessing + engine.cache_tag)
    extractor = FeatureExtractor(modality, engine, cache=cache, batch_size=request.batch_size)
    held = {}
    fitting = None
    head_splits = [name for name in request.splits if name != "test"]
    for name, examples in request.splits.items():
        if name == "test" and request.fit_head and "train" in held and set(head_splits) <= held.keys() and not modality.failures:
            # The head never sees the test split: fit it while that split is extracted.
            fitting = _Background(lambda selected=dict(held): _fit_head(request, selected))
        description = f"features ({name})"
        if request.fit_head:
            held[name] = extractor.features(examples, description=description)
        else:
            extractor.cached(examples, description=description)
    if not cache.writable:
        return None
    choice = digest = None
    if fitting is not None:
        choice, digest = fitting.result()
    elif request.fit_head and "train" in held and not modality.failures:
        choice, digest = _fit_head(request, held)
    # With unreadable examples the run's data shrinks (and may lose a class): it fits its own head.
    if modality.failures:
        choice = digest = None
    return PrefetchResult(stats=extractor.stats, choice=choice, head_digest=digest, peak_rss_mb=peak_rss_mb())


def _fit_head(request: _Request, held: dict[str, tuple[np.ndarray, list[int]]]) -> tuple[HeadChoice, str]:
    """The ``--head auto`` head on the training (and validation) features, and the digest of what it saw."""
    kind = label_kind(multi_label=request.multi_label)
    labels = {name: kind.label_array(request.splits[name], request.num_labels) for name in held if name != "test"}
    x, y = selection_arrays({name: features for name, (features, _) in held.items() if name != "test"}, labels)
    choice = select_head(x, y, task=kind.head_task(request.num_labels, request.class_weight), seed=request.seed)
    return choice, features_digest(x, y)


class _Background:
    """A function on a daemon thread: a helper told to stop exits at once, whatever the thread does."""

    def __init__(self, function):
        self._outcome: tuple = (None, None)
        self._thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self._thread.start()

    def _run(self, function) -> None:
        try:
            self._outcome = (function(), None)
        except BaseException as error:  # noqa: BLE001 - handed to result()
            self._outcome = (None, error)

    def result(self):
        self._thread.join()
        value, error = self._outcome
        if error is not None:
            raise error
        return value


def _stop(signum, frame) -> None:
    # An exception, not an exit on the spot: a shard being written is removed on the way out.
    raise SystemExit(1)


def _stop_when_orphaned() -> None:
    """Stop this helper once its run's end of the stdin pipe closes (the run ended, however)."""
    # The descriptor, not sys.stdin: a thread blocked in a buffered read would hold its lock at exit.
    while os.read(0, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(folder: str) -> int:
    """The helper process: read the request in ``folder``, write the result beside it."""
    signal.signal(signal.SIGTERM, _stop)
    done = False
    try:
        threading.Thread(target=_stop_when_orphaned, daemon=True).start()
        request = pickle.loads((Path(folder) / _REQUEST).read_bytes())
        result = _run(request)
        if result is None:
            return 3
        write_bytes_atomic(Path(folder) / _RESULT, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        done = True
    except Exception:  # noqa: BLE001 - any failure only means the run does the work itself
        return 1
    except SystemExit:
        return 1
    finally:
        # Stopped or failed, nobody will read the folder (a run that was killed cannot remove it).
        if not done:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # As the named module, so that what it pickles names hubcli.train.prefetch, not __main__.
    from hubcli.train import prefetch

    sys.exit(prefetch.main(sys.argv[1]))
