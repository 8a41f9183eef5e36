"""``hubcli retrain-images`` and ``hubcli classify-text``: train a classifier head on a hub module.

Both take the training options of :func:`hubcli.cli.options.training_options` and report the
run they wrote the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import (
    CacheDirOpt,
    ImageModuleOpt,
    JsonOpt,
    MinAccuracyOpt,
    MinMicroF1Opt,
    MirrorOpt,
    OfflineOpt,
    OutputOpt,
    OverwriteOpt,
    QuietOpt,
    TestSplitOpt,
    ValidationSplitOpt,
    load_settings,
    start_output,
    training_options,
)
from hubcli.cli.render import print_metrics
from hubcli.train.config import TrainConfig
from hubcli.train.gate import QualityGate


@training_options(fine_tune_help="After the head, train the whole model (module too) with augmentation.", augment=True)
def retrain_images_command(
    data_dir: Annotated[
        Optional[Path],
        typer.Argument(help="Folder with one sub-folder of images per class (or train/ val/ test/ folders of them).", show_default=False),
    ] = None,
    *,
    module: ImageModuleOpt = ...,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="Use this TFDS dataset (with its own splits) instead of DATA_DIR.", show_default=False)] = None,
    validation_split: ValidationSplitOpt = 0.1,
    test_split: TestSplitOpt = 0.1,
    image_size: Annotated[Optional[str], typer.Option("--image-size", help="SIZE or HEIGHTxWIDTH, for modules that do not fix it.", show_default=False)] = None,
    config: TrainConfig,
    min_accuracy: MinAccuracyOpt = None,
    min_micro_f1: MinMicroF1Opt = None,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train an image classifier on a hub module's features; the last stdout line is the run directory.

    Example: `hubcli retrain-images ./flowers --module efficientnet_lite0`
    """
    from hubcli.train.images import parse_image_size, retrain_images

    start_output(quiet, json_output)
    gate = QualityGate(min_accuracy=min_accuracy, min_micro_f1=min_micro_f1)
    summary = retrain_images(
        data_dir, module, settings=load_settings(cache_dir, offline, mirror), config=config, output=output, overwrite=overwrite,
        tfds_name=tfds, validation_split=validation_split, test_split=test_split, image_size=parse_image_size(image_size), gate=gate,
    )
    _report_run("retrain-images", summary, json_output, "images")
    gate.check(summary)


@training_options(fine_tune_help="After the head, train the whole model (module too).")
def classify_text_command(
    data: Annotated[
        Optional[Path],
        typer.Argument(help="CSV/TSV with a header, JSONL, sentence<TAB>label lines, or one folder of .txt files per class.", show_default=False),
    ] = None,
    *,
    module: Annotated[
        str,
        typer.Option(
            "--module", "-m", help="Text module taking a batch of tf.string sentences (or a BERT-style encoder with --preprocessor).", show_default=False
        ),
    ] = ...,
    preprocessor: Annotated[
        Optional[str], typer.Option("--preprocessor", help="BERT-style preprocessing module whose outputs feed --module.", show_default=False)
    ] = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    tfds: Annotated[
        Optional[str], typer.Option("--tfds", help="Use this TFDS dataset (with its own splits) instead of DATA, e.g. imdb_reviews.", show_default=False)
    ] = None,
    tfds_data_dir: Annotated[
        Optional[Path], typer.Option("--tfds-data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).", show_default=False)
    ] = None,
    text_column: Annotated[
        Optional[str], typer.Option("--text-column", help="CSV/TSV column or JSONL key holding the text (default: guessed).", show_default=False)
    ] = None,
    label_column: Annotated[
        Optional[str], typer.Option("--label-column", help="CSV/TSV column or JSONL key holding the label (default: guessed).", show_default=False)
    ] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="Character encoding of the data files, e.g. latin-1.")] = "utf-8",
    validation_split: ValidationSplitOpt = 0.1,
    test_split: TestSplitOpt = 0.1,
    config: TrainConfig,
    min_accuracy: MinAccuracyOpt = None,
    min_micro_f1: MinMicroF1Opt = None,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a text classifier on a hub text module's embeddings; the last stdout line is the run directory.

    Example: `hubcli classify-text imdb_labelled.txt --module minilm_l6_v2`
    """
    from hubcli.train.text import classify_text

    start_output(quiet, json_output)
    gate = QualityGate(min_accuracy=min_accuracy, min_micro_f1=min_micro_f1)
    # classify_text checks the data, then the module, before TensorFlow loads: bad input costs no start-up time.
    summary = classify_text(
        data, module, settings=load_settings(cache_dir, offline, mirror), config=config, output=output, overwrite=overwrite,
        tfds_name=tfds, tfds_data_dir=tfds_data_dir, text_column=text_column, label_column=label_column, encoding=encoding,
        preprocessor_handle=preprocessor, validation_split=validation_split, test_split=test_split, gate=gate,
    )
    _report_run("classify-text", summary, json_output, "texts")
    gate.check(summary)


#: How a run's ``evaluated_on`` reads in its table title.
EVALUATED_ON = {"out_of_fold": "out-of-fold (cross-validated training+validation)"}


def _report_run(command: str, summary: dict, json_output: bool, unit: str) -> None:
    """Render a finished training run; the last stdout line is the run directory."""
    if json_output:
        console.emit_json(command, {key: value for key, value in summary.items() if key != "history"})
        return
    extraction = summary["extraction"]
    rate = f", {extraction['examples_per_s']:.0f} {unit}/s" if extraction["examples_per_s"] else ""
    console.info(
        f"features: {extraction['features_computed']} computed{rate}, {extraction['features_cached']} from cache; "
        f"splits {', '.join(f'{name} {count}' for name, count in summary['splits'].items())}; "
        f"trained in {summary['training_time_s']:.1f} s"
    )
    print_metrics(f"{EVALUATED_ON.get(summary['evaluated_on'], summary['evaluated_on'])} metrics", summary)
    if summary["output"] is not None:  # None: a multi-worker run's other workers, whose chief writes the run
        typer.echo(summary["output"])
