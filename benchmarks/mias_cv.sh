#!/usr/bin/env bash
# mini-MIAS 5-fold cross-validation of the detector recipe, patient-level folds, no leakage:
#
#   1. a base detector trained on phantoms only (it never sees a mini-MIAS image), or BASE=DIR
#      naming such a bundle;
#   2. per fold k, the base fine-tuned on phantoms + the four other folds (repeat=REPEAT) and
#      evaluated on fold k (`mammocad eval detector`, which writes images.json);
#   3. one FROC over the 5 held-out folds, every image evaluated by the model that did not see
#      it (`mammocad eval pool`), and the breast-level AUC of the detector alone over the same
#      films (benchmarks/mias_cv_breasts.py, run with $PYTHON, default python3).
#
# Any shipped bundle trained on mini-MIAS folds 1-4 cannot be cross-validated (it saw them);
# this measures the recipe. Runs on a CPU (hours: set the budgets) or a GPU node:
#
#   RUN=runs/mias-cv benchmarks/mias_cv.sh                          # CPU defaults, windows
#   DEVICE=cuda CROP= BATCH=8 WORKERS=16 BASE_SECONDS=150 FOLD_SECONDS=45 \
#     MAMMOCAD="python3 -m mammocad.cli" RUN=/tmp/cv benchmarks/mias_cv.sh
#
# Every knob is an environment variable (defaults below); the commands it runs are printed.
set -euo pipefail

MAMMOCAD=${MAMMOCAD:-mammocad}
MIAS=${MIAS:-../shared/data/mini-mias}
RUN=${RUN:-runs/mias-cv}
DEVICE=${DEVICE:-cpu}
WORKERS=${WORKERS:-2}
BATCH=${BATCH:-4}
CROP=${CROP-512x512}              # empty: train on whole images (as on a GPU)
INPUT_SIZE=${INPUT_SIZE:-1024x832}
SIZE=${SIZE:-full}                 # phantom size (small: for a quick check of the script)
BASE=${BASE:-}                     # a phantom-only bundle to start from instead of training one
BASE_STUDIES=${BASE_STUDIES:-400}
BASE_SEED=${BASE_SEED:-8000}
BASE_SECONDS=${BASE_SECONDS:-3600}
FOLD_STUDIES=${FOLD_STUDIES:-100}
FOLD_SEED=${FOLD_SEED:-8400}
FOLD_SECONDS=${FOLD_SECONDS:-900}
REPEAT=${REPEAT:-4}
BOOTSTRAP=${BOOTSTRAP:-1000}
EXTRA=${EXTRA:-}                   # more `train detector` options, e.g. "--no-augment --no-mlflow"

crop_option=()
[[ -n "$CROP" ]] && crop_option=(--crop "$CROP" --crop-lesion-fraction 0.7)
common=(--epochs 1000 --batch-size "$BATCH" --learning-rate 3e-4 --warmup-steps 50
  --roi-batch-size 128 --input-size "$INPUT_SIZE" --device "$DEVICE" --workers "$WORKERS"
  --validate-every 0 --resume "${crop_option[@]}")  # --resume: a stopped run goes on
# shellcheck disable=SC2206  # EXTRA is a list of options, split on purpose
extra=($EXTRA)

run() { echo "+ $*" >&2; command "$@"; }  # command: the executable, not the function below
# shellcheck disable=SC2086  # MAMMOCAD may be "python3 -m mammocad.cli"
mammocad() { run $MAMMOCAD "$@"; }

mkdir -p "$RUN"
if [[ -z "$BASE" ]]; then
  if [[ ! -f "$RUN/base/mammocad-detector/manifest.json" ]]; then
    mammocad train detector --data "phantom:n=$BASE_STUDIES,seed=$BASE_SEED,size=$SIZE" \
      --out "$RUN/base" --time-limit "$BASE_SECONDS" --version 0.0.0-phantom-base \
      "${common[@]}" "${extra[@]}"
  fi
  BASE=$RUN/base/mammocad-detector
fi

for k in 0 1 2 3 4; do
  fold=$RUN/fold$k
  if [[ ! -f "$fold/mammocad-detector/manifest.json" ]]; then
    mammocad train detector --data "phantom:n=$FOLD_STUDIES,seed=$FOLD_SEED,size=$SIZE" \
      --data "mias:path=$MIAS,folds=5,exclude_fold=$k,repeat=$REPEAT" \
      --init-bundle "$BASE" --out "$fold" --time-limit "$FOLD_SECONDS" \
      --version "0.0.0-cv-fold$k" "${common[@]}" "${extra[@]}"
  fi
  if [[ ! -f "$fold/eval/images.json" ]]; then
    mammocad eval detector --model "$fold/mammocad-detector" \
      --data "mias:path=$MIAS,folds=5,fold=$k" --out "$fold/eval" --device "$DEVICE" \
      --bootstrap 0 --score-threshold 0.001 --detections-per-image 100
  fi
done

mammocad eval pool "$RUN"/fold{0,1,2,3,4}/eval --out "$RUN/pooled" --bootstrap "$BOOTSTRAP"
# breast level of the detector alone over the same folds (each mini-MIAS film is one breast)
run "${PYTHON:-python3}" "$(dirname "$0")/mias_cv_breasts.py" "$RUN"/fold{0,1,2,3,4}/eval \
  --mias "$MIAS" --out "$RUN/breasts"
