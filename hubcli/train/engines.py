"""Engines that run a frozen encoder over raw batches during feature extraction.

TensorFlow runs every module. A frozen encoder whose raw inputs are numbers (images)
can also be converted to a TFLite flatbuffer, the modality's in-graph input conversion
included, and run by XNNPACK: on small CPUs that computes the same features with less
work, and :class:`TFLiteEngine` runs one single-threaded interpreter per core, so an
interpreter never waits at a thread barrier for a core that the image decoders hold.

The converted engine is used only once it has agreed with TensorFlow on a probe batch
within :data:`AGREEMENT_TOLERANCE` (the largest absolute feature difference). Conversion
and probe happen once per (module content, preprocessing, engine version, TensorFlow
version, interpreter runtime); the outcome, accepted or refused and why, is recorded
beside the feature cache, so later runs neither convert nor probe again. A failed
conversion or a disagreement means TensorFlow, silently.

The interpreter is LiteRT's (``ai_edge_litert``) where it is installed, else the one inside
TensorFlow. LiteRT runs without importing TensorFlow, so a process that only extracts
(:mod:`hubcli.train.prefetch`) never pays TensorFlow's start-up. Nothing here imports
TensorFlow until a conversion, a TensorFlow engine or TensorFlow's interpreter needs it.

Layout, under ``<cache dir>/features/<module digest[:32]>/engines/``::

    tflite-<sha1(preprocessing, versions)[:16]>.json     the record (see EngineRecord)
    tflite-<sha1(preprocessing, versions)[:16]>.tflite   the flatbuffer, when accepted

Features never mix engines: :attr:`TFLiteEngine.cache_tag` (engine version and runtime)
is part of the feature-cache key. The probe bounds the difference on one batch, not on
every image, and a run's features should come from one engine whatever the cache's
history; switching engines costs one recomputation, never a silently mixed training set.

Example:
    >>> engine = choose_engine(encoder=encoder, modality=modality, module_digest=module.sha256,  # doctest: +SKIP
    ...                        features_dir=features_root(settings.cache_dir), examples=500)
    >>> engine.name, engine.cache_tag  # doctest: +SKIP
    ('tflite-xnnpack', '+tflite2-litert-2.3.0')
    >>> for positions, features in run_batches(engine, modality.iter_inputs(examples, 32)):  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hubcli.fsio import write_bytes_atomic, write_text_atomic
from hubcli.quiet_tensorflow import native_stderr_silenced
from hubcli.train.batches import in_batches
from hubcli.train.resources import available_cores

#: Largest absolute difference from TensorFlow's features a converted engine may show on the probe.
AGREEMENT_TOLERANCE = 1e-4
#: Bumped whenever the conversion could produce a different flatbuffer for the same module.
TFLITE_ENGINE_VERSION = 2
#: A run extracting fewer examples than this, with no record yet, leaves the conversion (seconds) to a larger one.
CONVERT_MIN_EXAMPLES = 256
PROBE_SIZE = 8


def _distribution_version(*names: str) -> str:
    """The installed version of the first of ``names`` present, read without importing it."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def tensorflow_version() -> str:
    """TensorFlow's version, from its distribution's metadata: the same in a process that never imports it."""
    return _distribution_version("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos", "tf-nightly")


def _tflite_runtime() -> str:
    """``litert-<version>`` where LiteRT is installed, else ``tf-<version>`` (TensorFlow's own interpreter)."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        return f"litert-{_distribution_version('ai-edge-litert', 'ai-edge-litert-nightly')}"
    return f"tf-{tensorflow_version()}"


#: The interpreter runtime: another one is another engine (its kernels round their own way).
TFLITE_RUNTIME = _tflite_runtime()


def litert_available() -> bool:
    """Whether converted engines run here without TensorFlow."""
    return TFLITE_RUNTIME.startswith("litert-")


def frozen_forward(encoder, modality):
    """raw batch -> features under ``encoder`` in inference mode, as one traced TensorFlow function.

    Example:
        >>> engine = TensorFlowEngine(frozen_forward(encoder, ImageModality((224, 224))))  # doctest: +SKIP
        >>> engine.run(np.zeros((2, 224, 224, 3), np.uint8)).shape  # doctest: +SKIP
        (2, 1280)
    """
    import tensorflow as tf

    return tf.function(lambda raw: encoder(modality.model_inputs(raw), training=False), reduce_retracing=True, autograph=False)


def batch_spec(raw: np.ndarray):
    """The ``tf.TensorSpec`` of batches shaped like ``raw``, any batch size (object arrays are strings).

    Example:
        >>> batch_spec(np.zeros((4, 8, 8, 3), np.uint8))  # doctest: +SKIP
        TensorSpec(shape=(None, 8, 8, 3), dtype=tf.uint8, name=None)
    """
    import tensorflow as tf

    return tf.TensorSpec([None, *raw.shape[1:]], tf.string if raw.dtype == object else tf.as_dtype(raw.dtype))


class TensorFlowEngine:
    """The encoder run by TensorFlow, one batch at a time (TF spreads each op over the cores itself).

    It is traced once, for any batch size, on the first batch: a last, shorter batch
    (or sentences of new lengths) never costs another trace.
    """

    name = "tensorflow"
    #: Features computed by TensorFlow keep the keys they had before engines existed.
    cache_tag = ""
    workers = 1

    def __init__(self, forward):
        self._forward = forward
        self._traced = None

    def run(self, raw: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._traced is None:
            self._traced = self._forward.get_concrete_function(batch_spec(raw))
        if len(raw) == 1:
            # TensorFlow picks another matrix kernel for a single row, whose results differ in the
            # last bits: run two copies, so a feature never depends on the batch it came in.
            return self._traced(tf.constant(np.concatenate([raw, raw]))).numpy()[:1]
        return self._traced(tf.constant(raw)).numpy()


class TFLiteEngine:
    """A converted encoder: a pool of single-threaded XNNPACK interpreters, one per worker.

    :meth:`run` is safe to call from ``workers`` threads at once; each call borrows one
    interpreter (the TFLite wrapper releases the GIL while it computes). The interpreters
    are made on the first call, so a run whose features are all cached never makes them.
    """

    name = "tflite-xnnpack"
    cache_tag = f"+tflite{TFLITE_ENGINE_VERSION}-{TFLITE_RUNTIME}"

    def __init__(self, flatbuffer: bytes, workers: int | None = None):
        self.workers = workers or available_cores()
        self._flatbuffer: bytes | None = flatbuffer
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        # One thread makes all interpreters: making one points fd 2 away and back, which must not interleave.
        self._making = threading.Lock()

    def run(self, raw: np.ndarray) -> np.ndarray:
        with self._making:
            if self._flatbuffer is not None:
                for _ in range(self.workers):
                    self._idle.put(_Interpreter(self._flatbuffer))
                self._flatbuffer = None
        interpreter = self._idle.get()
        try:
            return interpreter.run(raw)
        finally:
            self._idle.put(interpreter)


class _Interpreter:
    """One TFLite interpreter with one thread, run one image at a time.

    XNNPACK spends less CPU per image at batch 1 than at batch 32 (measured on
    EfficientNet-Lite0: about a tenth less): one image's activations stay in the core's
    caches, and the per-call overhead is small next to a module's work.
    """

    def __init__(self, flatbuffer: bytes):
        # The interpreter announces XNNPACK on fd 2 (TensorFlow's also warns that it moves to LiteRT).
        with native_stderr_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._interpreter = _interpreter_class()(model_content=flatbuffer, num_threads=1)
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]["index"]
            self._interpreter.resize_tensor_input(self._input["index"], [1, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()

    def run(self, raw: np.ndarray) -> np.ndarray:
        rows = []
        for index in range(len(raw)):
            self._interpreter.set_tensor(self._input["index"], raw[index : index + 1])
            self._interpreter.invoke()
            rows.append(self._interpreter.get_tensor(self._output)[0].copy())
        return np.stack(rows)


def _interpreter_class():
    if litert_available():
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    import tensorflow as tf

    return tf.lite.Interpreter


def run_batches(engine, batches: Iterable[tuple[list[int], np.ndarray]]) -> Iterator[tuple[list[int], np.ndarray]]:
    """(positions, features) for each (positions, raw batch), in order, on ``engine.workers`` threads.

    At most two batches per worker are in flight, so memory stays bounded however long
    ``batches`` is, and the producer (the modality's decoders) stays ahead of the engine.

    Example:
        >>> class Doubling:
        ...     workers = 2
        ...     def run(self, raw):
        ...         return raw * 2
        >>> [(p, f.tolist()) for p, f in run_batches(Doubling(), [([0], np.ones(1)), ([1, 2], np.ones(2))])]
        [([0], [2.0]), ([1, 2], [2.0, 2.0])]
    """
    if engine.workers <= 1:
        for positions, raw in batches:
            yield positions, engine.run(raw)
        return
    with ThreadPoolExecutor(engine.workers, thread_name_prefix="hubcli-engine") as pool:
        in_flight: deque = deque()
        for positions, raw in batches:
            in_flight.append((positions, pool.submit(engine.run, raw)))
            if len(in_flight) >= 2 * engine.workers:
                done_positions, future = in_flight.popleft()
                yield done_positions, future.result()
        while in_flight:
            done_positions, future = in_flight.popleft()
            yield done_positions, future.result()


@dataclass
class EngineRecord:
    """What the one conversion and probe of a module found; stored as JSON beside the flatbuffer."""

    engine: str
    accepted: bool
    reason: str
    max_abs_diff: float | None
    tolerance: float
    flatbuffer_sha256: str | None
    tensorflow: str
    #: The interpreter runtime that was probed (``litert-2.3.0``, or ``tf-2.21.0``).
    runtime: str
    preprocessing: str

    @classmethod
    def read(cls, path: Path) -> EngineRecord | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            # Missing, damaged or from another version: convert and probe again.
            return None


def engine_paths(features_dir: str | os.PathLike, module_digest: str, preprocessing: str) -> tuple[Path, Path]:
    """(record, flatbuffer) paths of the converted engine of one module and preprocessing.

    Example:
        >>> record, flatbuffer = engine_paths("/cache/features", "sha256:3f2a" + "0" * 60, "image-v1-224x224")  # doctest: +SKIP
        >>> record.parent, flatbuffer.suffix  # doctest: +SKIP
        (PosixPath('/cache/features/3f2a0000000000000000000000000000/engines'), '.tflite')
    """
    identity = f"{preprocessing}\0tflite-engine-{TFLITE_ENGINE_VERSION}\0tensorflow-{tensorflow_version()}\0{TFLITE_RUNTIME}"
    stem = f"tflite-{hashlib.sha1(identity.encode()).hexdigest()[:16]}"
    folder = Path(features_dir) / module_digest.split(":")[-1][:32] / "engines"
    return folder / f"{stem}.json", folder / f"{stem}.tflite"


def choose_engine(
    *,
    encoder,
    modality,
    module_digest: str,
    features_dir: str | os.PathLike,
    examples: int,
    convert_min_examples: int | None = None,
):
    """The engine for frozen extraction: the recorded TFLite one, a new one if it passes, else TensorFlow.

    ``examples`` is how many examples this run extracts features of: with no record yet and
    fewer than ``convert_min_examples`` (default :data:`CONVERT_MIN_EXAMPLES`) of them, the
    conversion (seconds) waits for a larger run.
    Modalities without a ``probe_inputs()`` (text: strings are no TFLite builtin) always
    get TensorFlow.
    """
    forward = frozen_forward(encoder, modality)
    probe_inputs = getattr(modality, "probe_inputs", None)
    if probe_inputs is None:
        return TensorFlowEngine(forward)
    record_path, flatbuffer_path = engine_paths(features_dir, module_digest, modality.preprocessing)
    record = EngineRecord.read(record_path)
    if record is None:
        if examples < (CONVERT_MIN_EXAMPLES if convert_min_examples is None else convert_min_examples):
            return TensorFlowEngine(forward)
        record, flatbuffer = _convert_and_probe(forward, probe_inputs(PROBE_SIZE), modality.preprocessing)
        _store(record, flatbuffer, record_path, flatbuffer_path)
    else:
        flatbuffer = _read_accepted(record, flatbuffer_path)
    if not record.accepted or flatbuffer is None:
        return TensorFlowEngine(forward)
    return TFLiteEngine(flatbuffer)


def accepted_flatbuffer(*, features_dir: str | os.PathLike, module_digest: str, preprocessing: str) -> bytes | None:
    """The converted engine's flatbuffer recorded for a module and preprocessing, if it was accepted.

    ``hubcli extract`` hands it to its workers, so they compute with the engine this machine chose.
    """
    record_path, flatbuffer_path = engine_paths(features_dir, module_digest, preprocessing)
    record = EngineRecord.read(record_path)
    return None if record is None else _read_accepted(record, flatbuffer_path)


def _read_accepted(record: EngineRecord, flatbuffer_path: Path) -> bytes | None:
    """The recorded flatbuffer, if accepted and still the very bytes that were probed."""
    if not record.accepted:
        return None
    try:
        flatbuffer = flatbuffer_path.read_bytes()
    except OSError:
        return None
    return flatbuffer if hashlib.sha256(flatbuffer).hexdigest() == record.flatbuffer_sha256 else None


def _convert_and_probe(forward, probe: np.ndarray, preprocessing: str) -> tuple[EngineRecord, bytes | None]:
    """Convert ``forward`` and compare it with TensorFlow on ``probe``: the record and, if accepted, the flatbuffer."""
    import tensorflow as tf

    record = EngineRecord(
        engine=TFLiteEngine.name,
        accepted=False,
        reason="",
        max_abs_diff=None,
        tolerance=AGREEMENT_TOLERANCE,
        flatbuffer_sha256=None,
        tensorflow=tensorflow_version(),
        runtime=TFLITE_RUNTIME,
        preprocessing=preprocessing,
    )
    flatbuffer = None
    try:
        flatbuffer = convert(forward, probe)
        # One image at a time: TensorFlow's scratch memory for a whole batch would raise the run's peak.
        reference = in_batches(lambda one: forward(tf.constant(one)), probe, batch_size=1)
        converted = TFLiteEngine(flatbuffer, workers=1).run(probe)
        record.max_abs_diff = float(np.max(np.abs(converted - reference))) if reference.size else 0.0
        record.accepted = converted.shape == reference.shape and record.max_abs_diff <= AGREEMENT_TOLERANCE
        record.reason = "agrees with TensorFlow" if record.accepted else f"differs from TensorFlow by {record.max_abs_diff:.3g}"
    except Exception as err:  # noqa: BLE001 - the converter and interpreter raise many types; any means "use TF"
        first_line = next(iter(str(err).strip().splitlines()), "")
        record.reason = f"conversion failed: {type(err).__name__}: {first_line}"
    if not record.accepted:
        return record, None
    record.flatbuffer_sha256 = hashlib.sha256(flatbuffer).hexdigest()
    return record, flatbuffer


def convert(forward, probe: np.ndarray) -> bytes:
    """A TFLite flatbuffer of ``forward`` (builtin ops only) for batches shaped like ``probe``, any batch size.

    Raises whatever the converter raises (``ConverterError`` for ops without a builtin).

    Example:
        >>> flatbuffer = convert(frozen_forward(encoder, modality), modality.probe_inputs(8))  # doctest: +SKIP
    """
    import tensorflow as tf

    concrete = forward.get_concrete_function(batch_spec(probe))
    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def _store(record: EngineRecord, flatbuffer: bytes | None, record_path: Path, flatbuffer_path: Path) -> None:
    """Write the flatbuffer, then the record that vouches for it; an unwritable cache only costs the next run a probe."""
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        if flatbuffer is not None:
            write_bytes_atomic(flatbuffer_path, flatbuffer)
        write_text_atomic(record_path, json.dumps(asdict(record), indent=2) + "\n")
    except OSError:
        pass
