"""scripts/train_emotion_gpu.sh end to end on the CPU (a file of its own so that the test workers share
the emotion tests' time)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, cli_env
from fer_fakes import fake_fer as _fake_fer
from test_emotion import no_network  # noqa: F401 (autouse fixture: nothing here may use the network)


@pytest.mark.slow
def test_gpu_script_trains_runs_side_by_side_and_continues_one_for_a_new_cycle(tmp_path):
    """scripts/train_emotion_gpu.sh, here on TensorFlow and the CPU with a training-only zip."""
    root = _fake_fer(tmp_path)
    data = tmp_path / "train-only.zip"
    with zipfile.ZipFile(data, "w") as zf:
        for f in sorted((root / "train").rglob("*.jpg")):
            zf.write(f, f.relative_to(root))
    runs = tmp_path / "runs"

    def script(*specs, **env):
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "train_emotion_gpu.sh"), *specs],
            cwd=REPO,
            env=cli_env(DATA=data, RUNS=runs, BUDGET=1, KERAS_BACKEND="tensorflow", PYTHON=sys.executable, **env),
            capture_output=True,
            text=True,
            timeout=600,
        )

    done = script("a:vgg:1", "b:res:2")
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "== a: 2 epochs" in done.stdout and "== b: 2 epochs" in done.stdout  # the budget's minimum
    first = json.loads((runs / "a" / "metrics.json").read_text())
    assert first["test_pending"] and first["config"]["split_seed"] == 42
    assert first["config"]["average_last"] == 15 and first["config"]["seed"] == 1
    assert json.loads((runs / "b" / "metrics.json").read_text())["config"]["arch"] == "res"
    # A new cycle of run a: its weights are the start, at the cycle's learning rate.
    done = script(f"c:vgg:3:{runs / 'a' / 'emotion.keras'}", CYCLE_LR="5e-4")
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    cycle = json.loads((runs / "c" / "metrics.json").read_text())
    assert cycle["init"]["model"] == str(runs / "a" / "emotion.keras") and cycle["total_epochs"] == 4
    assert cycle["config"]["learning_rate"] == 5e-4 and cycle["config"]["average_last"] == 12
    done = script("d:vgg:4:" + str(tmp_path / "missing.keras"))
    assert done.returncode == 2 and "no model file" in done.stderr and not (runs / "d").exists()
