"""Training the emotion network from the command line on a tiny FER2013 stand-in: checkpoints, resume,
weight averaging, new cycles, distillation, the residual network, `finish` (a file of its own so that
the test workers share the emotion tests' time)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.emotion import cli as emotion_cli
from engine.emotion.averaging import snapshots
from engine.emotion.dataset import load_split
from engine.emotion.detector import EmotionRecognizer
from fer_fakes import fake_fer as _fake_fer
from test_emotion import no_network  # noqa: F401 (autouse fixture: nothing here may use the network)


@pytest.mark.slow
def test_training_checkpoints_and_resumes(tmp_path, capsys):
    root = _fake_fer(tmp_path)
    out = tmp_path / "model"

    def cli(*argv):
        """(exit code, stdout, stderr) of `python -m engine.emotion ARGV`, run in this process (TensorFlow
        imported once; each process would spend seconds importing it)."""
        capsys.readouterr()
        code = emotion_cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def train(epochs, *extra, to=out, code=0):
        returncode, _, stderr = cli(
            "train",
            "--data",
            str(root),
            "--out",
            str(to),
            "--epochs",
            str(epochs),
            "--batch-size",
            "16",
            *extra,
        )
        assert returncode == code, stderr[-2000:]
        if code:
            assert "Traceback" not in stderr
            return stderr
        return json.loads((to / "checkpoints" / "state.json").read_text())

    state = train(1, "--average-last", "2")  # as a process of its own: tests/test_emotion_gpu_script.py
    assert state["epoch"] == 1 and (out / "checkpoints" / "last.keras").exists()
    state = train(2, "--resume", "--average-last", "2")
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert sorted(snapshots(out / "checkpoints")) == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 14 and len(metrics["training_curve"]) == 2
    picked = metrics["selection"]
    assert picked["weight_average"]["epochs"] == [1, 2] and picked["weight_average"]["n_snapshots"] == 2
    better = picked["weight_average"]["val_accuracy"] > picked["best_epoch"]["val_accuracy"]
    assert picked["chosen"] == ("weight_average" if better else "best_epoch")  # the better one ships
    # The run records which faces its validation split held out (checked on resume, cycles, ensembles).
    from engine.emotion.runs import stratified_split, validation_fingerprint

    split = load_split(root, "train")
    held_out = validation_fingerprint(split, stratified_split(split.labels, 0.1, 42)[1])
    assert metrics["data_fingerprint"]["validation"] == state["val_fingerprint"] == held_out
    # Re-pick the finished run with another window, from the command line.
    code, stdout, stderr = cli("average", "--last", "1", "--out", str(out))
    assert code == 0, stderr[-2000:]
    assert json.loads(stdout)["selection"]["weight_average"]["epochs"] == [2, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert EmotionRecognizer.load(out).classify(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)

    # A new learning-rate cycle from the finished model: its weights are the start, and
    # metrics.json keeps the lineage so the total training effort stays visible.
    # Another weight/augmentation seed on the same split is fine: its validation images are ours.
    more = tmp_path / "more"
    state = train(
        1,
        "--init-from",
        str(out / "emotion.keras"),
        "--learning-rate",
        "1e-9",
        "--seed",
        "7",
        "--split-seed",
        "42",
        to=more,
    )
    assert state["init"]["epochs_run"] == 2 and state["init"]["accuracy"] == metrics["accuracy"]
    assert state["config"]["seed"] == 7 and state["config"]["split_seed"] == 42
    import keras

    first, again = (keras.models.load_model(d / "emotion.keras", compile=False) for d in (out, more))
    # lr 1e-9: the trained weights are still the earlier model's (a random start would differ by
    # ~5e-3 after its two epochs); only batch-norm statistics, not trainable, moved.
    for w0, w1 in zip(first.trainable_weights, again.trainable_weights):
        np.testing.assert_allclose(np.asarray(w0), np.asarray(w1), atol=1e-5)
    continued = json.loads((more / "metrics.json").read_text())
    assert continued["total_epochs"] == 3 and len(continued["training_curve"]) == 1
    # Continuing a model trained with another validation split would validate on its training images.
    error = train(1, "--init-from", str(out / "emotion.keras"), "--seed", "7", to=tmp_path / "x", code=2)
    assert "split seed 42; this run has" in error and "split seed 7)" in error
    assert "Train from scratch" in error
    # Distillation: the small live network learns from a teacher's flip-averaged scores (computed
    # once, cached in checkpoints/teacher.npy) on the teacher's validation split.
    from engine.emotion.evaluation import predict_probabilities

    student = train(
        1,
        "--arch",
        "small",
        "--teacher",
        str(out / "emotion.keras"),
        "--split-seed",
        "42",
        "--seed",
        "5",
        to=tmp_path / "s",
    )
    taught = json.loads((tmp_path / "s" / "metrics.json").read_text())["teacher"]
    assert student["teacher"] == taught and taught["model"] == str(out / "emotion.keras")
    assert taught["accuracy"] == metrics["accuracy"] and taught["weight"] == 0.7
    tr_idx = stratified_split(split.labels, 0.1, 42)[0]
    teacher = keras.models.load_model(out / "emotion.keras", compile=False)
    np.testing.assert_allclose(
        np.load(tmp_path / "s" / "checkpoints" / "teacher.npy"),
        predict_probabilities(teacher, split.images[tr_idx]),
        atol=1e-5,
    )
    assert keras.models.load_model(tmp_path / "s" / "emotion.keras", compile=False).name == "fer_small"
    # A teacher that held out other faces learnt this run's validation faces: refused.
    error = train(
        1, "--arch", "small", "--teacher", str(out / "emotion.keras"), "--split-seed", "7", to=tmp_path / "s2", code=2
    )
    assert "the teacher held out other validation faces" in error and "--split-seed (42)" in error
    error = train(1, "--arch", "small", "--teacher", str(tmp_path / "none.keras"), to=tmp_path / "s2", code=2)
    assert "none.keras: no emotion.keras with its metrics.json there" in error
    error = train(
        1,
        "--arch",
        "small",
        "--teacher",
        str(out / "emotion.keras"),
        "--teacher-weight",
        "0",
        to=tmp_path / "s2",
        code=2,
    )
    assert "--teacher-weight 0.0: must be above 0 and at most 1" in error
    # A residual network on the same split; its last two epochs' weights are averaged (re-built as
    # the residual architecture) and compared with its best epoch. It trains on a time budget, which
    # shortens the run to what fits (here: the two epochs it needs to read the pace), and with
    # --no-test, as where no test images are; `finish` evaluates it where they are.
    res = train(
        50,
        "--arch",
        "res",
        "--seed",
        "9",
        "--split-seed",
        "42",
        "--average-last",
        "2",
        "--time-budget",
        "0.001",
        "--no-test",
        to=tmp_path / "r",
    )  # spent by any epoch
    assert res["config"]["arch"] == "res" and res["epoch"] == res["planned_epochs"] == 2
    assert [round(h["learning_rate"], 6) for h in res["history"]] == [2e-4, 1.1e-3]
    res_metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "weight_average" in res_metrics["selection"]
    assert keras.models.load_model(tmp_path / "r" / "emotion.keras", compile=False).name == "fer_res"
    error = train(
        1, "--init-from", str(tmp_path / "r" / "emotion.keras"), "--split-seed", "42", to=tmp_path / "y", code=2
    )
    assert "a 'res' network" in error and "Pass --arch res" in error
    error = train(1, "--init-from", str(tmp_path / "missing.keras"), to=tmp_path / "y", code=2)
    assert "no such model file" in error
    pending = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert pending["test_pending"] and pending["accuracy"] is None and pending["backend"] == "tensorflow"

    def finish(data):
        return cli("finish", "--out", str(tmp_path / "r"), "--data", str(data))

    elsewhere = _fake_fer(tmp_path / "elsewhere", n_per_class=5)
    code, _, stderr = finish(elsewhere)
    assert code == 2 and "not the training images this run used" in stderr
    code, stdout, stderr = finish(root)
    assert code == 0, stderr[-2000:]
    finished = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "test_pending" not in finished and finished["n_images"] == 14
    assert json.loads(stdout)["accuracy"] == finished["accuracy"] is not None
    assert finished["training_curve"] == pending["training_curve"]
    code, _, stderr = finish(root)
    assert code == 2 and "already evaluated on test" in stderr
    # A fresh run starts without the earlier run's snapshots; averaging then says what is missing.
    assert snapshots(more / "checkpoints") == {}
    code, _, stderr = cli("average", "--last", "3", "--out", str(more))
    assert code == 2 and "no weight snapshots" in stderr

    # Ensemble of the seed-42 run, the seed-5 student and the seed-9 residual network on the same split,
    # from the command line.
    # Its decision is checked against one computed here: ship iff the average beats both on
    # validation (flip-averaged).
    import keras

    from engine.emotion.evaluation import predict_probabilities

    members = [out / "emotion.keras", tmp_path / "s" / "emotion.keras", tmp_path / "r" / "emotion.keras"]
    split = load_split(root, "train")
    _, val = stratified_split(split.labels, 0.1, 42)

    def as_stored(path):  # the ensemble file keeps float16 weights: score what it keeps
        net = keras.models.load_model(path, compile=False)
        net.set_weights([w.astype(np.float16).astype(np.float32) for w in net.get_weights()])
        return net

    probs = [predict_probabilities(as_stored(m), split.images[val]) for m in members]
    scores = [round(float((p.argmax(1) == split.labels[val]).mean()), 4) for p in probs]
    together = round(float((np.mean(probs, 0).argmax(1) == split.labels[val]).mean()), 4)
    target = tmp_path / "ensemble"
    code, stdout, _ = cli("ensemble", "--data", str(root), "--members", *map(str, members), "--out", str(target))
    result = json.loads(stdout)
    assert result["selection"]["members"] == pytest.approx(scores, abs=1e-4)
    assert result["selection"]["ensemble"] == pytest.approx(together, abs=1e-4)
    assert result["written"] == (together > max(scores)) == (code == 0)
    assert (target / "emotion.keras").exists() == result["written"]
    if result["written"]:
        assert EmotionRecognizer.load(target).n_members == 3
        shipped = json.loads((target / "metrics.json").read_text())
        assert shipped["storage"] == "float16" and shipped["data_fingerprint"]["validation"] == held_out
