"""Features of examples under a frozen encoder, through the on-disk feature cache.

Only cache misses are decoded and run through the module, in batches (in the modality's
batching order: text by length), with decoding pipelined ahead by the modality and the
engine (:mod:`hubcli.train.engines`) running batches on its own workers; identical
examples (same content) run once.

Example:
    >>> extractor = FeatureExtractor(modality, engine, cache=cache)  # doctest: +SKIP
    >>> matrix, kept = extractor.features(data.train)  # doctest: +SKIP
    >>> extractor.stats.to_json()["features_computed"]  # a warm re-run computes none  # doctest: +SKIP
    0
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hubcli import console
from hubcli.errors import HubcliError
from hubcli.train.engines import choose_engine, run_batches
from hubcli.train.feature_cache import FeatureCache, features_root
from hubcli.train.modality import Modality
from hubcli.train.module_ref import ModuleRef
from hubcli.train.splits import Example

#: Bumped when augment() could produce different pixels for the same (image, copy) seed.
AUGMENT_VERSION = 1


@dataclass
class ExtractionStats:
    """What feature extraction did; `features_computed == 0` means the module never ran."""

    features_computed: int = 0
    features_cached: int = 0
    forward_batches: int = 0
    seconds: float = 0.0
    #: The engine that computes (and keys) this run's features: ``tensorflow`` or ``tflite-xnnpack``.
    engine: str = "tensorflow"

    def after_prefetch(self, helper: ExtractionStats) -> ExtractionStats:
        """This run's figures once a helper process extracted ahead of it (:mod:`hubcli.train.prefetch`).

        The run then found the helper's features cached: the helper's figures are the run's.
        If the run still computed some itself (the helper could not store them all), the run's
        own figures stand, and what the helper stored counts as cached.
        """
        return helper if self.features_computed == 0 else self

    def to_json(self) -> dict:
        rate = self.features_computed / self.seconds if self.features_computed and self.seconds > 0 else None
        return {
            "features_computed": self.features_computed,
            "features_cached": self.features_cached,
            "forward_batches": self.forward_batches,
            "seconds": round(self.seconds, 3),
            "examples_per_s": round(rate, 1) if rate else None,
            "engine": self.engine,
        }


class FeatureExtractor:
    """Features of examples computed by ``engine``, cached in ``cache`` (None: no cache).

    The cache must be keyed by the engine too (``engine.cache_tag`` in its preprocessing id).
    """

    def __init__(self, modality: Modality, engine, *, cache: FeatureCache | None, batch_size: int = 32):
        self.modality = modality
        self.engine = engine
        self.cache = cache
        self.batch_size = batch_size
        self.stats = ExtractionStats(engine=engine.name)
        self._augment = None

    def key(self, example: Example, copy: int | None = None) -> str:
        """The cache key of an example (or of its ``copy``-th augmented copy): its content hash."""
        digest = self.modality.content_hash(example)
        return digest if copy is None else f"{digest}+aug{AUGMENT_VERSION}.{copy}"

    def features(self, examples: Sequence[Example], copy: int | None = None, description: str = "extracting features") -> tuple[np.ndarray, list[int]]:
        """Features [n_ok, dim] and the positions (into ``examples``) they belong to.

        ``copy`` selects the n-th augmented copy instead of the plain example.
        Unreadable examples are left out (and recorded in ``modality.failures``).
        """
        keys = [self.key(example, copy) for example in examples]
        found, _ = self.cache.get(keys) if self.cache is not None else ({}, None)
        found.update(self._compute_missing(examples, keys, found, copy, description, keep=True))
        kept = [i for i, key in enumerate(keys) if key in found]
        dim = next(iter(found.values())).shape[-1] if found else 0
        matrix = np.stack([found[keys[i]] for i in kept]) if kept else np.zeros((0, dim), np.float32)
        return matrix, kept

    def cached(self, examples: Sequence[Example], copy: int | None = None, description: str = "extracting features") -> tuple[list[str], list[int]]:
        """Put the features of ``examples`` in the cache without holding them; their keys, and the positions kept.

        For training that streams features from the cache's shards: nothing here grows with
        the number of examples but the keys.
        """
        keys = [self.key(example, copy) for example in examples]
        present = {key for key, location in zip(keys, self.cache.locate(keys), strict=True) if location is not None}
        self._compute_missing(examples, keys, present, copy, description, keep=False)
        if not self.cache.writable:
            raise HubcliError(f"training from the feature cache needs to write it, and {self.cache.directory} cannot be written")
        return keys, [i for i, location in enumerate(self.cache.locate(keys)) if location is not None]

    def _compute_missing(self, examples, keys: list[str], known, copy: int | None, description: str, *, keep: bool) -> dict[str, np.ndarray]:
        self.stats.features_cached += sum(1 for key in keys if key in known)
        # Identical files (same key) are computed once.
        first_of_key: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in known:
                first_of_key.setdefault(key, i)
        if not first_of_key:
            return {}
        unique = list(first_of_key.values())
        return self._compute([examples[i] for i in unique], [keys[i] for i in unique], copy, description, keep=keep)

    def _inputs(self, examples: list[Example], keys: list[str], copy: int | None):
        """The modality's raw batches, each replaced by its ``copy``-th augmented version when asked."""
        for positions, raw in self.modality.iter_inputs(examples, self.batch_size):
            if copy is not None:
                # A stateless seed per (example, copy): the same copy is the same pixels on every run.
                seeds = np.asarray([[int(keys[p][:8], 16) & 0x7FFFFFFF, copy] for p in positions], dtype=np.int32)
                raw = self._augmented(raw, seeds)
            yield positions, raw

    def _augmented(self, raw: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        # Augmentation stays in TensorFlow whatever the engine: the engine sees the augmented raw batch.
        import tensorflow as tf

        if self._augment is None:
            self._augment = tf.function(self.modality.augment, reduce_retracing=True)
        return self._augment(tf.constant(raw), tf.constant(seeds)).numpy()

    def _compute(self, examples: list[Example], keys: list[str], copy: int | None, description: str, *, keep: bool = True) -> dict[str, np.ndarray]:
        """Run the module on ``examples`` (cache misses), storing what it computes in the cache (and, ``keep``, returning it)."""
        order = self.modality.batching_order(examples)
        examples, keys = [examples[i] for i in order], [keys[i] for i in order]
        computed: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        with console.progress_bar(len(examples), description, unit="ex") as bar:
            for positions, values in run_batches(self.engine, self._inputs(examples, keys, copy)):
                batch_keys = [keys[p] for p in positions]
                if keep:
                    computed.update(zip(batch_keys, values, strict=True))
                if self.cache is not None:
                    self.cache.put(batch_keys, values)
                self.stats.forward_batches += 1
                self.stats.features_computed += len(positions)
                bar.update(len(positions))
        self.stats.seconds += time.perf_counter() - started
        return computed


def frozen_extractor(*, modality: Modality, encoder, module: ModuleRef, examples: int, batch_size: int = 32) -> FeatureExtractor:
    """The extractor a run uses: its engine (chosen for ``examples`` examples) and the feature cache keyed by it.

    Example:
        >>> extractor = frozen_extractor(modality=modality, encoder=encoder, module=module, examples=500)  # doctest: +SKIP
        >>> extractor.engine.name  # doctest: +SKIP
        'tflite-xnnpack'
    """
    root = features_root(module.settings.cache_dir)
    engine = choose_engine(encoder=encoder, modality=modality, module_digest=module.sha256, features_dir=root, examples=examples)
    cache = FeatureCache(root, module.sha256, modality.preprocessing + engine.cache_tag)
    return FeatureExtractor(modality, engine, cache=cache, batch_size=batch_size)


def raw_inputs(modality: Modality, examples: Sequence[Example], batch_size: int) -> np.ndarray:
    """All readable raw inputs of ``examples`` in memory (fine-tuning, representative samples)."""
    batches = [raw for _, raw in modality.iter_inputs(examples, batch_size)]
    return np.concatenate(batches) if batches else np.zeros((0,))
