"""The checks a training run makes of its options against its data and module, before any work.

They need neither TensorFlow nor a pixel, so ``retrain-images`` makes them before it starts
its extraction helper (:mod:`hubcli.train.prefetch`) or imports TensorFlow: a wrong option
costs milliseconds, never a started extraction.

Example:
    >>> check_run(data, modality, module=module, config=TrainConfig(fine_tune=True), gate=None)  # doctest: +SKIP
    Traceback (most recent call last):
    hubcli.errors.UsageError: --fine-tune needs a TF2 module; TF1 Hub format modules can only be used frozen
"""

from __future__ import annotations

from hubcli.errors import UsageError
from hubcli.train.config import TrainConfig
from hubcli.train.gate import QualityGate
from hubcli.train.module_ref import ModuleRef
from hubcli.train.splits import LabeledData


def check_run(data: LabeledData, modality, *, module: ModuleRef, config: TrainConfig, gate: QualityGate | None) -> None:
    """Raise :class:`~hubcli.errors.UsageError` for options this data or module cannot take (``config`` itself checked)."""
    if config.fine_tune and module.info.format == "tf1_hub":
        raise UsageError("--fine-tune needs a TF2 module; TF1 Hub format modules can only be used frozen")
    if config.augment_copies and not modality.supports_augmentation:
        raise UsageError(f"{modality.task} data has no augmentation; drop --augment")
    if data.multi_label != config.multi_label:
        raise UsageError("multi-label data (a manifest) needs --multi-label" if data.multi_label else "--multi-label needs a manifest of labels")
    if gate is not None:
        sizes = data.sizes()
        out_of_fold = config.head == "auto" and not config.fine_tune
        held_out = bool(sizes["test"] or sizes["validation"] or config.cv_folds or out_of_fold)
        gate.check_options(multi_label=config.multi_label, held_out=held_out)
