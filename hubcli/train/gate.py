"""The quality gate for CI: ``--min-accuracy`` and ``--min-micro-f1``.

A run that scores below its gate is still written in full (so it can be examined and
compared); the command then prints one line, ``error: accuracy 0.76 < --min-accuracy
0.90 (run kept at runs/flowers)``, and exits 10, which a CI job can tell apart from a
crash (70) or bad data (8).

The score gated is the run's held-out figure: the test split, else (``--head auto``) the
out-of-fold predictions of the training and validation examples, else the validation
split, else the ``--cv`` estimate. A gate with none of these is refused before training.

Example:
    >>> gate = QualityGate(min_accuracy=0.9)
    >>> gate.check({"accuracy": 0.95, "evaluated_on": "test", "output": "runs/x"})
    >>> gate.check({"accuracy": 0.76, "evaluated_on": "test", "output": "runs/x"})
    Traceback (most recent call last):
    ...
    hubcli.errors.QualityGateError: accuracy 0.76 < --min-accuracy 0.9 (run kept at runs/x)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hubcli.errors import QualityGateError, UsageError

#: The ``evaluated_on`` values of a run's metrics that no part of the model trained on.
HELD_OUT = ("test", "out_of_fold", "validation")


@dataclass(frozen=True)
class QualityGate:
    """Lowest acceptable held-out accuracy (single-label) or micro F1 (multi-label)."""

    min_accuracy: float | None = None
    min_micro_f1: float | None = None

    @property
    def active(self) -> bool:
        return self.min_accuracy is not None or self.min_micro_f1 is not None

    def check_options(self, *, multi_label: bool, held_out: bool) -> None:
        """Refuse a gate that cannot apply, before any training; ``held_out``: the run will have a held-out score."""
        for flag, value in (("--min-accuracy", self.min_accuracy), ("--min-micro-f1", self.min_micro_f1)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"{flag} must be between 0 and 1, got {value}")
        if multi_label and self.min_accuracy is not None:
            raise UsageError("--min-accuracy is for single-label runs; gate a --multi-label run with --min-micro-f1")
        if not multi_label and self.min_micro_f1 is not None:
            raise UsageError("--min-micro-f1 is for --multi-label runs; gate a single-label run with --min-accuracy")
        if self.active and not held_out:
            raise UsageError("a quality gate needs held-out data: a test or validation split, --head auto, or --cv K")

    def check(self, summary: Mapping) -> None:
        """Raise QualityGateError when the run's held-out score is below the gate."""
        if not self.active:
            return
        metric, flag, floor = ("micro_f1", "--min-micro-f1", self.min_micro_f1) if self.min_micro_f1 is not None else (
            "accuracy", "--min-accuracy", self.min_accuracy
        )
        if summary.get("evaluated_on") in HELD_OUT:
            score = summary[metric]
        else:
            score = summary["cv"]["mean"]
        if score < floor:
            name = "micro F1" if metric == "micro_f1" else metric
            raise QualityGateError(f"{name} {round(score, 4)} < {flag} {floor} (run kept at {summary['output']})")
