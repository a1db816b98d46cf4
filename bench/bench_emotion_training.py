"""Emotion training: seconds per training step of each network, per Keras backend, on this machine.

    python bench/bench_emotion_training.py [--arch vgg res] [--python OTHER_VENV/bin/python ...]

Decides where and how a training run goes: one step is a batch of 128 faces through
``train.py``'s optimiser and loss (augmentation, which runs beside it on the CPU, not
included); an epoch of FER2013 is ~202 such steps. Each backend runs in its own process
(``KERAS_BACKEND``), one after the other, so their figures compare as ratios. Backends
the interpreter lacks are reported, not failed: the project's venv has TensorFlow only;
pass ``--python`` a venv with torch or jax (and keras, numpy, opencv) to time those too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STEP = r"""
import json, sys, time
import numpy as np
import keras
from engine.emotion.model import make_model
from engine.emotion.train import TrainConfig
cfg = TrainConfig(data="", out_dir="")
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(cfg.batch_size, 48, 48, 1)).astype("float32")
y = np.eye(7, dtype="float32")[rng.integers(0, 7, cfg.batch_size)]
out = {}
for arch in sys.argv[1:]:
    model = make_model(arch)
    model.compile(optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    for _ in range(3):   # the first steps compile
        model.train_on_batch(x, y)
    times = []
    for _ in range(12):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    out[arch] = {"step_s": round(float(np.median(times)), 3), "batch": cfg.batch_size,
                 "parameters": int(model.count_params())}
print("RESULT " + json.dumps({"backend": keras.backend.backend(), "keras": keras.__version__, **out}))
"""


def measure(python: str, backend: str, archs: list[str]) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    done = subprocess.run([python, "-c", STEP, *archs], env=env, capture_output=True, text=True, cwd=REPO, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": backend, "error": last[:160]}
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["vgg"], choices=["vgg", "res", "small", "wide"])
    parser.add_argument(
        "--python", nargs="+", default=[sys.executable], help="interpreters to time (each tries every backend)"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; seconds per training step (median of 12), batch as train.py's default")
    rows = []
    for python in args.python:
        for backend in ("tensorflow", "torch", "jax"):
            result = measure(python, backend, args.arch)
            rows.append(result)
            if "error" in result:
                print(f"  {backend:<10} {python}: not available ({result['error']})")
                continue
            for arch in args.arch:
                r = result[arch]
                print(
                    f"  {backend:<10} {arch:<5} {r['step_s']:.3f} s/step  ({r['parameters'] / 1e6:.2f} M "
                    f"parameters; ~{r['step_s'] * 202:.0f} s per FER2013 epoch before augmentation)"
                )
    timed = [r for r in rows if "error" not in r]
    for arch in args.arch:
        if len(timed) > 1:
            base = timed[0][arch]["step_s"]
            print(
                f"  {arch}: "
                + ", ".join(f"{r['backend']} {r[arch]['step_s'] / base:.2f}x" for r in timed)
                + f" the time of {timed[0]['backend']}"
            )


if __name__ == "__main__":
    main()
