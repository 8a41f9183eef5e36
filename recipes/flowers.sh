#!/usr/bin/env bash
# Flowers: retrain EfficientNet-Lite0 (converted by recipes/efficientnet_lite.py) on flower photos.
#
#   recipes/flowers.sh                 # ../shared/datasets/flowers-mini if present, else TFDS tf_flowers
#   recipes/flowers.sh path/to/flowers # any class-folder dataset (one sub-folder per class)
#   recipes/flowers.sh "" --fine-tune  # extra arguments go to `hubcli retrain-images`
#
# TFDS tf_flowers (3,670 photos, 5 classes) is downloaded by tensorflow-datasets, so it needs internet.
#
# Measured (2-core shared CPU, TF 2.21, frozen module, defaults, --seed 7):
#   flowers-mini (498 readable photos, 5 classes; hash split 395/54/51):
#     test accuracy 82.4% (42/51), macro F1 0.830; 498 features extracted at 11 images/s,
#     head trained in 7.7 s, 92 s end to end including TF start-up and the module check.
#   tf_flowers: not measured here (no internet on the machine this was written on).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODULES=${MODULES:-.modules}
DATA=${1:-}
shift || true

if [[ -z "$DATA" && -d ../shared/datasets/flowers-mini ]]; then
    DATA=../shared/datasets/flowers-mini
fi
if [[ -n "$DATA" ]]; then
    SOURCE=("$DATA")
else
    SOURCE=(--tfds tf_flowers)
fi

"$PY" -m recipes.build_modules --out "$MODULES" --only efficientnet_lite0_feature_vector
"$PY" -m hubcli retrain-images "${SOURCE[@]}" \
    --module "$MODULES/efficientnet_lite0_feature_vector" \
    --output runs/flowers --overwrite --seed 7 "$@"
