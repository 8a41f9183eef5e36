"""Options that several commands take, each defined once, and the training options' one TrainConfig builder.

Typer reads a command's options from its signature, so a shared option is an ``Annotated``
alias here, used as a parameter's annotation. The training options of ``retrain-images`` and
``classify-text`` are many and identical, so :func:`training_options` adds them to a command's
signature in place of a ``config`` parameter and calls the command with the
:class:`~hubcli.train.config.TrainConfig` they describe. Nothing here imports TensorFlow.

Example:
    >>> @training_options(fine_tune_help="After the head, train the whole model.")
    ... def train_command(*, data: str = "x", config: TrainConfig, quiet: QuietOpt = False) -> TrainConfig:
    ...     return config
    >>> parameters = inspect.signature(train_command).parameters
    >>> list(parameters)[:3], "augment" in parameters
    (['data', 'head', 'class_weight'], False)
    >>> typed = {name: parameter.default for name, parameter in parameters.items()}  # what typer passes
    >>> train_command(**{**typed, "epochs": 3}).epochs
    3
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hubcli import console
from hubcli.train.config import TrainConfig

# Options of every command that reaches the module cache.
CacheDirOpt = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Module cache (default: $HUBCLI_CACHE_DIR, $TFHUB_CACHE_DIR, ~/.cache/hubcli/modules).", show_default=False),
]
OfflineOpt = Annotated[
    Optional[bool],
    typer.Option("--offline/--online", help="Never touch the network; serve from the cache ($HUBCLI_OFFLINE=1).", show_default=False),
]
MirrorOpt = Annotated[
    Optional[str],
    typer.Option("--mirror", help="Serve hub handles from this http(s) URL or directory ($HUBCLI_MIRROR).", show_default=False),
]
CaBundleOpt = Annotated[
    Optional[Path],
    typer.Option("--ca-bundle", help="PEM file of the CAs to trust for HTTPS, e.g. a proxy's ($REQUESTS_CA_BUNDLE, $SSL_CERT_FILE).", show_default=False),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", help="Give up after this many seconds in all, however the transfer is going ($HUBCLI_TIMEOUT).", show_default=False),
]
TfliteOpt = Annotated[bool, typer.Option("--tflite", help="The model's .tflite file (tfhub.dev's ?lite-format=tflite), not its SavedModel.")]

# Output options of every command.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (stable schema).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status messages.")]

# Deleting from the cache.
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted.")]

RegistryOpt = Annotated[
    Optional[str],
    typer.Option("--registry", help="Read this module registry (directory or http(s) URL) instead of the catalog.", show_default=False),
]

# The module of the commands that compute image features (retrain-images, extract).
ImageModuleOpt = Annotated[
    str, typer.Option("--module", "-m", help="Image feature-vector module: handle, alias, URL, archive or directory.", show_default=False)
]

# The run a training command writes, and how its examples are split.
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory (default: runs/<data name>, never overwriting).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory given with --output.")]
ValidationSplitOpt = Annotated[float, typer.Option("--validation-split", help="Share of examples (by stable content or path hash) for validation.")]
TestSplitOpt = Annotated[float, typer.Option("--test-split", help="Share of examples (by stable content or path hash) for the final test.")]

_FINE_TUNE = "fine_tune"
_AUGMENT = "augment"
# Training options in the order --help shows them: (parameter, TrainConfig field, annotation).
# --fine-tune's help depends on the command, and --augment is for images only (see training_options).
_TRAINING_OPTIONS: tuple[tuple[str, str, Any], ...] = (
    (
        "head",
        "head",
        Annotated[
            str,
            typer.Option(
                "--head",
                help="auto: the L2 strength chosen by 5-fold cross-validation on training+validation features, then refitted on all "
                "of them; fixed: the Keras head that --epochs, --learning-rate, --dropout, --l2, --label-smoothing and --patience set.",
            ),
        ],
    ),
    (
        "class_weight",
        "class_weight",
        Annotated[str, typer.Option("--class-weight", help="auto: weigh examples by inverse class frequency (selection and refit); none.")],
    ),
    (
        "cv",
        "cv_folds",
        Annotated[int, typer.Option("--cv", help="Also report the K-fold cross-validated score (mean ± std) of the head on all labelled data; 0: off.")],
    ),
    (
        "multi_label",
        "multi_label",
        Annotated[
            bool,
            typer.Option(
                "--multi-label",
                help="DATA is a manifest (CSV with path or text and ;-separated labels columns, or JSONL): any labels per example, "
                "a sigmoid head and one threshold per label.",
            ),
        ],
    ),
    ("epochs", "epochs", Annotated[int, typer.Option("--epochs", help="--head fixed: most epochs (early stopping usually ends sooner).")]),
    ("batch_size", "batch_size", Annotated[int, typer.Option("--batch-size", help="Training batch size (--head fixed, fine-tuning).")]),
    ("learning_rate", "learning_rate", Annotated[float, typer.Option("--learning-rate", "--lr", help="--head fixed: learning rate.")]),
    ("optimizer", "optimizer", Annotated[str, typer.Option("--optimizer", help="adam, adamw, nadam, sgd or rmsprop.")]),
    ("dropout", "dropout", Annotated[float, typer.Option("--dropout", help="Dropout before the softmax layer (--head fixed, fine-tuning).")]),
    ("l2", "l2", Annotated[float, typer.Option("--l2", help="--head fixed: L2 weight penalty of the softmax layer.")]),
    (
        "label_smoothing",
        "label_smoothing",
        Annotated[float, typer.Option("--label-smoothing", help="Label smoothing of the cross-entropy (--head fixed, fine-tuning).")],
    ),
    ("patience", "patience", Annotated[int, typer.Option("--patience", help="Stop after this many epochs without a better validation loss.")]),
    (_FINE_TUNE, "fine_tune", None),
    ("fine_tune_epochs", "fine_tune_epochs", Annotated[int, typer.Option("--fine-tune-epochs", help="Epochs of fine-tuning.")]),
    (
        "fine_tune_learning_rate",
        "fine_tune_learning_rate",
        Annotated[
            Optional[float],
            typer.Option("--fine-tune-learning-rate", help="Fine-tuning learning rate (default: learning rate / 10).", show_default=False),
        ],
    ),
    (
        "unfreeze",
        "unfreeze",
        Annotated[
            str,
            typer.Option(
                "--unfreeze", help="--fine-tune: all, or N to train only the module's top N layers (the rest and batch-norm statistics stay pretrained)."
            ),
        ],
    ),
    (
        _AUGMENT,
        "augment_copies",
        Annotated[int, typer.Option("--augment", help="Frozen module: also train on N cached augmented copies of each training image.")],
    ),
    ("seed", "seed", Annotated[int, typer.Option("--seed", help="Random seed; the same seed and data give the same run.")]),
    ("tensorboard", "tensorboard", Annotated[bool, typer.Option("--tensorboard", help="Write TensorBoard logs to <run>/logs.")]),
    (
        "max_memory",
        "max_memory",
        Annotated[
            Optional[str],
            typer.Option(
                "--max-memory", help="Memory budget, e.g. 4G: larger feature sets train the head streamed from the cache (default: half the RAM).",
                show_default=False,
            ),
        ],
    ),
    (
        "distribute",
        "distribute",
        Annotated[
            Optional[str],
            typer.Option(
                "--distribute", help="Fine-tune on every local GPU (mirrored) or on the TF_CONFIG cluster's machines (multi-worker).",
                show_default=False,
            ),
        ],
    ),
)
_FIELD_OF = {parameter: field for parameter, field, _ in _TRAINING_OPTIONS}
#: Every training option's default: TrainConfig's own, so the CLI and the library cannot drift apart.
TRAINING_DEFAULTS: dict[str, Any] = {parameter: getattr(TrainConfig(), field) for parameter, field in _FIELD_OF.items()}


# The quality gate for CI (exit code 10 below it, the run kept).
MinAccuracyOpt = Annotated[
    Optional[float],
    typer.Option("--min-accuracy", help="Exit 10 (run kept) if the held-out accuracy is below this, e.g. 0.9.", show_default=False),
]
MinMicroF1Opt = Annotated[
    Optional[float],
    typer.Option("--min-micro-f1", help="--multi-label: exit 10 (run kept) if the held-out micro F1 is below this.", show_default=False),
]


def train_config(**values: Any) -> TrainConfig:
    """The TrainConfig that training options' values (by parameter name) describe, checked.

    Example:
        >>> train_config(epochs=3, augment=2).augment_copies
        2
    """
    config = TrainConfig(**{_FIELD_OF[parameter]: value for parameter, value in values.items()})
    config.check()
    return config


def training_options(*, fine_tune_help: str, augment: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Put the training options where the decorated command's keyword-only ``config`` parameter is.

    The command is called with ``config``, a TrainConfig built by :func:`train_config`, instead of
    the options. ``augment`` adds ``--augment`` (cached augmented copies, an image option).
    """
    annotations = {_FINE_TUNE: Annotated[bool, typer.Option("--fine-tune", help=fine_tune_help)]}
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotations.get(name, annotation), default=TRAINING_DEFAULTS[name])
        for name, _, annotation in _TRAINING_OPTIONS
        if augment or name != _AUGMENT
    ]
    names = [parameter.name for parameter in added]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        # eval_str: typer needs the annotations themselves, and the command's module defers them.
        signature = inspect.signature(command, eval_str=True)
        own = list(signature.parameters.values())
        at = [parameter.name for parameter in own].index("config")

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            config = train_config(**{name: values.pop(name) for name in names})
            return command(**values, config=config)

        run.__signature__ = signature.replace(parameters=[*own[:at], *added, *own[at + 1 :]])
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in run.__signature__.parameters.values()}
        return run

    return decorate


def load_settings(
    cache_dir: Path | None = None,
    offline: bool | None = None,
    mirror: str | None = None,
    *,
    ca_bundle: Path | None = None,
    timeout: float | None = None,
):
    """The Settings the cache and network options choose (then the environment, the config file, the defaults)."""
    from hubcli.config import Settings

    return Settings.load(cache_dir=cache_dir, offline=offline, mirror=mirror, ca_bundle=ca_bundle, timeout=timeout)


def start_output(quiet: bool, json_output: bool = False) -> None:
    """Apply the output options before a command prints anything."""
    # With --json, stdout carries only the document; status messages would still go to stderr,
    # but scripts asked for machine output, so keep stderr for warnings and errors.
    console.set_quiet(quiet or json_output)
