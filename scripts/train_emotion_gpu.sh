#!/usr/bin/env bash
# Train several emotion networks at once on one GPU machine, each for a fixed time.
#
#   DATA=fer2013-train.zip RUNS=runs/gpu BUDGET=450 scripts/train_emotion_gpu.sh NAME:ARCH:SEED ...
#
# Keras runs on its JAX backend there (such a machine may have JAX but no TensorFlow);
# the .keras files it writes load in TensorFlow unchanged. DATA may hold the training
# images alone (`train/<emotion>/*.jpg`): every run is trained with --no-test, so
# evaluate each where the test images are:
#   python -m engine.emotion finish --out RUNS/NAME --data ../shared/data/fer2013.zip
# All runs share validation split 42 (that of the shipped networks), so any of them
# can join an ensemble (`python -m engine.emotion ensemble`).
#
# NAME:ARCH:SEED:FROM continues FROM (an emotion.keras beside its metrics.json, trained on
# split 42) for a new learning-rate cycle instead: CYCLE_EPOCHS (32) at peak CYCLE_LR
# (1e-3), the last CYCLE_AVERAGE (12) epochs averaged, the recipe of the shipped cycle 4.
#
# BUDGET is each run's training time in seconds (the run plans its epochs after two;
# EPOCHS or CYCLE_EPOCHS caps them); HARD (default BUDGET + 150) kills a run that
# overstays. Runs share the GPU; JAX allocates its memory on demand so that they fit.
set -u
DATA=${DATA:?set DATA to FER2013 (a zip, folder or csv; training images suffice)}
RUNS=${RUNS:-runs/gpu}
BUDGET=${BUDGET:-450}
HARD=${HARD:-$((BUDGET + 150))}
EPOCHS=${EPOCHS:-300}
AVERAGE_LAST=${AVERAGE_LAST:-15}
CYCLE_EPOCHS=${CYCLE_EPOCHS:-32}
CYCLE_LR=${CYCLE_LR:-1e-3}
CYCLE_AVERAGE=${CYCLE_AVERAGE:-12}
PYTHON=${PYTHON:-python3}
[ $# -gt 0 ] || { echo "usage: DATA=... $0 NAME:ARCH:SEED[:FROM] ..." >&2; exit 2; }

export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
specs=("$@") pids=()
for spec in "$@"; do  # every spec is checked before any run starts
  IFS=: read -r name arch seed from <<<"$spec"
  [ -n "$name" ] && [ -n "$arch" ] && [ -n "$seed" ] || {
    echo "$spec: expected NAME:ARCH:SEED[:FROM], e.g. g1:vgg:101" >&2; exit 2; }
  [ -z "$from" ] || [ -f "$from" ] || { echo "$spec: no model file $from to continue" >&2; exit 2; }
done
for spec in "$@"; do
  IFS=: read -r name arch seed from <<<"$spec"
  if [ -n "$from" ]; then
    plan=(--init-from "$from" --learning-rate "$CYCLE_LR" --epochs "$CYCLE_EPOCHS"
          --average-last "$CYCLE_AVERAGE")
  else
    plan=(--epochs "$EPOCHS" --average-last "$AVERAGE_LAST")
  fi
  mkdir -p "$RUNS/$name"
  timeout "$HARD" "$PYTHON" -m engine.emotion train --data "$DATA" --out "$RUNS/$name" \
    --arch "$arch" --seed "$seed" --split-seed 42 --no-test --time-budget "$BUDGET" \
    "${plan[@]}" >"$RUNS/$name/train.log" 2>&1 &
  pids+=("$!")
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "run ${specs[$i]} ended with exit code $?" >&2; status=1; }
done
for spec in "$@"; do
  name=${spec%%:*}
  echo "== $name: $(grep -c 'train epoch ' "$RUNS/$name/train.log") epochs"
  grep -E "time budget|validation accuracy|Error|error" "$RUNS/$name/train.log" | tail -4
done
exit $status
