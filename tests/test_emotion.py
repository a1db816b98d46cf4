"""Emotion recognition: inputs, crop geometry, detection, the shipped model, training/resume.

Nothing here may touch the network: a fixture makes any socket connection fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest

from conftest import REPO, cli_env
from engine.emotion import cli as emotion_cli
from engine.emotion.averaging import snapshots
from engine.emotion.dataset import EMOTIONS, FerDataError, load_split
from engine.emotion.detector import EmotionRecognizer, draw_faces
from engine.emotion.images import EmotionInputError, crop_face, to_gray
from fer_fakes import fake_fer as _fake_fer
from fer_fakes import two_nets as _two_nets

MODEL_DIR = REPO / "models" / "emotion"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("emotion code tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def recognizer():
    return EmotionRecognizer.load(MODEL_DIR)


# ---------------------------------------------------------------------- input handling
def _jpeg(img, ext=".jpg"):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_color_orders_and_formats():
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[:, :, 2] = 200  # pure red in BGR
    rgb = bgr[:, :, ::-1].copy()
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(to_gray(bgr), expected)
    np.testing.assert_array_equal(to_gray(rgb, "rgb"), expected)
    assert not np.array_equal(to_gray(rgb, "bgr"), expected)  # the order matters and is honoured
    rgba = np.dstack([rgb, np.full((10, 12), 255, np.uint8)])
    np.testing.assert_array_equal(to_gray(rgba, "rgb"), expected)
    np.testing.assert_array_equal(to_gray(expected), expected)
    np.testing.assert_array_equal(to_gray(expected[..., None]), expected)
    assert to_gray(np.ones((4, 4), np.float32)).max() == 255  # 0-1 floats scaled
    for ext in (".png", ".webp"):
        np.testing.assert_array_equal(to_gray(_jpeg(bgr, ext)), expected)
    assert abs(int(to_gray(_jpeg(bgr)).mean()) - int(expected.mean())) <= 3  # JPEG is lossy


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a JPEG, PNG or WebP"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 5), np.uint8), "Unsupported image shape"),
        ("photo.jpg", "Expected an image array"),
    ],
)
def test_bad_inputs(bad, message):
    with pytest.raises(EmotionInputError, match=message):
        to_gray(bad)


def test_truncated_and_oversized():
    data = _jpeg(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(EmotionInputError, match="corrupt or truncated JPEG"):
        to_gray(data[: len(data) // 3])
    huge = np.broadcast_to(np.uint8(0), (8000, 8000))  # 64 MP without allocating it
    with pytest.raises(EmotionInputError, match="too large"):
        to_gray(huge)


def test_crop_geometry_rows_are_y_columns_are_x():
    img = np.zeros((300, 400), np.uint8)
    x, y, w, h = 250, 40, 120, 60  # wide box, far right: swapping w/h or x/y would miss it
    img[y : y + h, x : x + w] = 255
    img[y : y + h // 2, x : x + w // 2] = 100  # top-left quadrant marks orientation
    crop = crop_face(img, (x, y, w, h))
    assert crop.shape == (48, 48)
    assert crop[:20, :20].mean() == pytest.approx(100, abs=2)
    assert crop[30:, 30:].mean() == pytest.approx(255, abs=2)
    # a box hanging off the edge is clipped, not wrapped
    edge = crop_face(img, (380, 280, 50, 50))
    assert edge.shape == (48, 48) and edge.max() == 0
    with pytest.raises(EmotionInputError, match="outside"):
        crop_face(img, (500, 10, 20, 20))


def test_no_face_is_empty_not_error(recognizer):
    assert recognizer.analyze(np.full((480, 640, 3), 127, np.uint8)) == []


@pytest.mark.integration  # a real FER2013 face (happy_frame)
def test_detects_and_draws_a_face(recognizer, happy_frame):
    faces = recognizer.analyze(happy_frame)
    assert len(faces) == 1
    face = faces[0]
    assert set(face.probabilities) == set(EMOTIONS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    x, y, w, h = face.box
    assert 150 <= x + w / 2 <= 350 and 120 <= y + h / 2 <= 360  # where the face was pasted
    drawn = draw_faces(happy_frame, faces)
    assert drawn.shape == happy_frame.shape and not np.array_equal(drawn, happy_frame)
    rgb_faces = recognizer.analyze(cv2.cvtColor(happy_frame, cv2.COLOR_BGR2RGB), color_order="rgb")
    assert rgb_faces[0].label == face.label


# ---------------------------------------------------------------------- the shipped model
def test_shipped_model_files(recognizer):
    assert recognizer.runtime == "litert"  # what the app serves with
    assert (MODEL_DIR / "emotion.keras").stat().st_size < 20 * 2**20
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    assert metrics["labels"] == list(EMOTIONS)
    assert {"accuracy", "per_class", "confusion_matrix", "data_fingerprint"} <= set(metrics)
    networks = metrics.get("members") or [metrics]  # an ensemble keeps each network's record
    assert len(networks) == recognizer.n_members
    for net in networks:
        assert {"training_curve", "training_seconds", "config"} <= set(net)


@pytest.mark.integration
def test_shipped_ensemble_choice_reproduces(recognizer, fer_zip):
    """The validation figures that made the ensemble ship are what its networks score now."""
    from engine.emotion.evaluation import predict_probabilities
    from engine.emotion.runs import stratified_split, validation_fingerprint

    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    if recognizer.n_members == 1:
        pytest.skip("the shipped model is a single network")
    train = load_split(fer_zip, "train")
    _, val = stratified_split(train.labels, metrics["config"]["val_fraction"], metrics["config"]["split_seed"])
    assert metrics["data_fingerprint"]["validation"] == validation_fingerprint(train, val)
    x, y = train.images[val], train.labels[val]
    from engine.emotion.ensemble import members_of

    probs = [predict_probabilities(m, x) for m in members_of(recognizer.model)]
    scores = [round(float((p.argmax(1) == y).mean()), 4) for p in probs]
    together = round(float((np.mean(probs, axis=0).argmax(1) == y).mean()), 4)
    picked = metrics["selection"]
    assert scores == pytest.approx(picked["members"], abs=2e-4)
    assert together == pytest.approx(picked["ensemble"], abs=2e-4) and together > max(scores)


@pytest.mark.integration
def test_model_predicts_dataset_faces(recognizer, fer_zip):
    test = load_split(fer_zip, "test")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(test), 600, replace=False)
    probs = recognizer.classify(test.images[pick])
    accuracy = float((probs.argmax(1) == test.labels[pick]).mean())
    assert accuracy >= 0.6, accuracy
    happy = test.images[test.labels == EMOTIONS.index("happy")][:100]
    assert (recognizer.classify(happy).argmax(1) == EMOTIONS.index("happy")).mean() >= 0.8


@pytest.fixture(scope="module")
def happy_frame():
    """A 640x480 frame with one FER2013 test face pasted in."""
    from conftest import MISSING_FER, need, real_fer
    from engine.emotion.frames import face_frame

    return face_frame(need(real_fer(), MISSING_FER), "happy")


# ---------------------------------------------------------------------- data + training


def test_loaders_agree(tmp_path):
    root = _fake_fer(tmp_path)
    zpath = tmp_path / "fer.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in root.rglob("*.jpg"):
            zf.write(f, f.relative_to(root))
    a, b = load_split(root, "train"), load_split(zpath, "train")
    assert len(a) == len(b) == 42 and a.fingerprint == b.fingerprint
    csv = tmp_path / "fer2013.csv"
    lines = (
        ["emotion,pixels,Usage"]
        + [f"{k},{' '.join(['7'] * 2304)},Training" for k in range(7)]
        + [f"3,{' '.join(['9'] * 2304)},PrivateTest"]
    )
    csv.write_text("\n".join(lines) + "\n")
    assert len(load_split(csv, "train")) == 7 and load_split(csv, "test").labels.tolist() == [3]
    csv.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    with pytest.raises(FerDataError, match="line 2"):
        load_split(csv, "train")
    with pytest.raises(FerDataError, match="no such file"):
        load_split(tmp_path / "nope.zip", "train")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(FerDataError, match="not a valid zip"):
        load_split(tmp_path / "bad.zip", "train")


def test_architectures():
    from engine.emotion.model import ARCHITECTURES, make_model

    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 1)).astype(np.float32)
    sizes = {}
    for arch in ARCHITECTURES:
        model = make_model(arch)
        probs = np.asarray(model(faces, training=False))
        assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
        sizes[arch] = model.count_params()
    assert 1.6e6 < sizes["vgg"] < 1.8e6 and 1.1e6 < sizes["res"] < 1.3e6 and 4e5 < sizes["small"] < 4.5e5
    assert 3.8e6 < sizes["wide"] < 4.0e6
    with pytest.raises(ValueError, match="unknown architecture 'resnet'; choose one of vgg, res, small, wide"):
        make_model("resnet")


@pytest.mark.integration  # a real FER2013 face (happy_frame)
def test_ensemble_averages_its_networks_and_live_video_takes_turns(tmp_path, happy_frame):
    import keras

    from engine.emotion.ensemble import build_ensemble, members_of
    from engine.emotion.live import FrameProcessor

    a, b = _two_nets(tmp_path)
    path = tmp_path / "emotion.keras"
    build_ensemble([a, b]).save(path)
    loaded = keras.models.load_model(path, compile=False)  # one ordinary .keras file
    members = members_of(loaded)
    assert [m.name for m in members] == ["member_1", "member_2"] and members_of(a) == [a]
    faces = np.random.default_rng(3).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    x = faces[..., None].astype(np.float32)
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    assert np.abs(pa - pb).max() > 1e-3  # different networks, or the checks below prove nothing
    np.testing.assert_allclose(loaded.predict(x, verbose=0), (pa + pb) / 2, atol=1e-6)

    rec = EmotionRecognizer(loaded)
    assert rec.n_members == 2 and EmotionRecognizer(a).n_members == 1
    np.testing.assert_allclose(rec.classify(faces, False, member=0), pa, atol=1e-5)
    np.testing.assert_allclose(rec.classify(faces, False, member=3), pb, atol=1e-5)  # k % 2
    np.testing.assert_allclose(rec.classify(faces, False), (pa + pb) / 2, atol=1e-5)
    # Live video: one network per frame, in turn; alpha 1 keeps only the newest frame.
    processor = FrameProcessor(rec, alpha=1.0)
    processor.process(happy_frame)  # a face shows once seen in two frames in a row (FaceTracker)
    assert processor.latest().faces == 0
    for turn in range(1, 4):
        processor.process(happy_frame)
        reading = processor.latest()
        expected = rec.analyze(happy_frame, flip_average=False, member=turn)[0].probabilities
        assert reading.faces == 1
        assert reading.probabilities == pytest.approx({k: round(v, 4) for k, v in expected.items()}, abs=2e-4)
    assert processor.frames == 4


def test_litert_conversions_are_cached_by_content(tmp_path, monkeypatch, capsys):
    from engine.emotion import lite, model_file
    from engine.emotion.ensemble import MEMBER_PREFIX, build_ensemble

    a, b = _two_nets(tmp_path)
    folder = tmp_path / "emotion"
    folder.mkdir()
    build_ensemble([a, b]).save(folder / "emotion.keras")
    faces = np.random.default_rng(4).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path / "data"))
    # `prepare` (make run) converts and caches before the app's first visit ...
    assert emotion_cli.main(["prepare", "--model", str(folder), "--json"]) == 0
    ready = json.loads(capsys.readouterr().out)
    assert ready["networks"] == 2 and ready["runtime"] == "litert" and ready["model"] == str(folder)
    assert emotion_cli.main(["prepare", "--model", str(tmp_path / "nowhere")]) == 3
    assert "No emotion model at" in capsys.readouterr().err
    cache = tmp_path / "data" / "litert-cache"
    names = sorted(p.name for p in cache.glob("*.tflite"))
    assert [n.split("-")[1] for n in names] == ["net0", "net1"]
    [about] = cache.glob("*.json")  # what a load needs to run them without Keras
    recorded = json.loads(about.read_text())
    assert recorded["networks"] == 2 and recorded["outputs"] == 7
    assert [name.startswith(MEMBER_PREFIX) for name in recorded["names"]] == [True, True]
    rec = EmotionRecognizer.load(folder)
    assert rec.n_members == 2 and rec.runtime == "litert"
    x = faces[..., None].astype(np.float32)
    np.testing.assert_allclose(
        rec.classify(faces, False), (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2, atol=1e-5
    )
    # ... so that loads convert nothing ...
    convert = lite.to_litert

    def no_conversion(model):
        raise AssertionError("converted again despite the cache")

    def no_keras(path):
        raise AssertionError("the Keras file was loaded despite the cache")

    read_keras = model_file.load_model
    monkeypatch.setattr(lite, "to_litert", no_conversion)
    monkeypatch.setattr(model_file, "load_model", no_keras)
    again = EmotionRecognizer.load(folder)
    assert again.runtime == "litert" and again.n_members == 2
    np.testing.assert_allclose(again.classify(faces), rec.classify(faces), atol=1e-6)
    np.testing.assert_allclose(again.classify(faces, False, member=1), b.predict(x, verbose=0), atol=1e-5)
    monkeypatch.setattr(model_file, "load_model", read_keras)
    assert again.model.name == rec.model.name  # the Keras model is read when asked for
    # ... nor import Keras or TensorFlow (a server's first webcam visit: seconds and memory saved) ...
    check = (
        "import sys; from engine.emotion.detector import EmotionRecognizer as R; r = R.load(sys.argv[1]); "
        "print(r.runtime, r.n_members, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, str(folder)],
        env=cli_env(ENGINE_DATA_DIR=tmp_path / "data"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["litert", "2", "False", "False"], done.stderr[-2000:]
    # ... a damaged cache file is converted again and replaced ...
    monkeypatch.setattr(lite, "to_litert", convert)
    damaged = next(p for p in cache.iterdir() if "-net0-" in p.name)
    good = damaged.read_bytes()
    damaged.write_bytes(b"not a flatbuffer")
    np.testing.assert_allclose(EmotionRecognizer.load(folder).classify(faces), rec.classify(faces), atol=1e-6)
    assert damaged.read_bytes() == good
    # ... and another model file gets conversions of its own.
    build_ensemble([b, a]).save(folder / "emotion.keras")
    swapped = EmotionRecognizer.load(folder)
    assert len(list(cache.glob("*.tflite"))) == 4 and len(list(cache.glob("*.json"))) == 2
    np.testing.assert_allclose(
        swapped.classify(faces, False, member=0), rec.classify(faces, False, member=1), atol=1e-6
    )


def test_ensemble_refuses_members_it_cannot_check(tmp_path):
    from engine.emotion.ensemble import EnsembleNotBetter, make_ensemble
    from engine.emotion.runs import WarmStartError

    root = _fake_fer(tmp_path)
    fingerprint = load_split(root, "train").fingerprint
    a, _ = _two_nets(tmp_path)
    runs = []
    for name, config in (("a", {"seed": 42}), ("b", {"seed": 7, "split_seed": 42}), ("c", {"seed": 9})):
        folder = tmp_path / name
        folder.mkdir()
        a.save(folder / "emotion.keras")
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    "config": {**config, "val_fraction": 0.1},
                    "data_fingerprint": {"train": fingerprint},
                    "training_curve": [],
                    "training_seconds": 1.0,
                    "epochs_run": 1,
                }
            )
        )
        runs.append(folder / "emotion.keras")
    out = tmp_path / "out"
    with pytest.raises(WarmStartError, match="different validation splits"):
        make_ensemble([runs[0], runs[2]], str(root), out)
    with pytest.raises(WarmStartError, match="listed twice"):
        make_ensemble([runs[0], runs[0]], str(root), out)
    with pytest.raises(WarmStartError, match="at least two"):
        make_ensemble([runs[0]], str(root), out)
    with pytest.raises(WarmStartError, match="no such model file"):
        make_ensemble([runs[0], tmp_path / "nope.keras"], str(root), out)
    (tmp_path / "b" / "metrics.json").rename(tmp_path / "b" / "gone.json")
    with pytest.raises(WarmStartError, match="metrics.json: no such file"):
        make_ensemble(runs[:2], str(root), out)
    (tmp_path / "b" / "gone.json").rename(tmp_path / "b" / "metrics.json")
    # Two copies of one network err alike: the ensemble cannot beat them, nothing is written.
    with pytest.raises(EnsembleNotBetter, match="nothing was written") as info:
        make_ensemble(runs[:2], str(root), out)
    assert info.value.selection["ensemble"] == max(info.value.selection["members"])
    assert not (out / "emotion.keras").exists()
    other = _fake_fer(tmp_path / "other", n_per_class=5)
    with pytest.raises(WarmStartError, match="trained on other images"):
        make_ensemble(runs[:2], str(other), out)
    # An ensemble is not one network: a new training cycle cannot start from it.
    from engine.emotion.runs import _warm_start
    from engine.emotion.train import TrainConfig

    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"members": [{}, {}], "config": {}}))
    with pytest.raises(WarmStartError, match="an ensemble of 2 networks, not one network"):
        _warm_start(a, runs[0], load_split(root, "train"), TrainConfig(data=str(root), out_dir="o"))


def test_a_differently_ordered_copy_is_refused_for_its_other_validation_split(tmp_path):
    from engine.emotion.ensemble import EnsembleNotBetter, make_ensemble
    from engine.emotion.runs import (
        WarmStartError,
        _check_run_data,
        _warm_start,
        stratified_split,
        validation_fingerprint,
    )
    from engine.emotion.train import TrainConfig

    root = _fake_fer(tmp_path, n_per_class=10)
    zpath = tmp_path / "fer.zip"
    with zipfile.ZipFile(zpath, "w") as zf:  # the zip lists the images in reverse order
        for f in sorted(root.rglob("*.jpg"), reverse=True):
            zf.write(f, f.relative_to(root))
    folder, packed = load_split(root, "train"), load_split(zpath, "train")
    assert folder.fingerprint == packed.fingerprint  # same images and labels...
    assert packed.names[0] == "train/surprise/9.jpg" and folder.names[0] == "train/angry/0.jpg"
    fp = {}
    for name, split in (("folder", folder), ("zip", packed)):
        _, val_idx = stratified_split(split.labels, 0.2, 42)
        fp[name] = validation_fingerprint(split, val_idx)
        held_out = sorted(split.names[i] for i in val_idx)
        assert fp[name] == validation_fingerprint(split, val_idx[::-1])  # a set, not a sequence
        assert len(held_out) == 14
    assert fp["folder"] != fp["zip"]  # ...but the split holds out other faces

    vgg, res = _two_nets(tmp_path)
    runs = []
    for name, net in (("a", vgg), ("b", res)):
        (tmp_path / name).mkdir()
        net.save(tmp_path / name / "emotion.keras")
        (tmp_path / name / "metrics.json").write_text(
            json.dumps(
                {
                    "config": {"seed": 42, "val_fraction": 0.2, "arch": "res" if net is res else "vgg"},
                    "data_fingerprint": {"train": packed.fingerprint, "validation": fp["zip"]},
                    "data_source": "fer.zip",
                    "training_curve": [],
                    "training_seconds": 1.0,
                    "epochs_run": 1,
                }
            )
        )
        runs.append(tmp_path / name / "emotion.keras")
    with pytest.raises(WarmStartError, match=r"another order.*Pass the data it was trained with \(fer.zip\)"):
        make_ensemble(runs, str(root), tmp_path / "out")
    with pytest.raises(WarmStartError, match="another order"):
        _warm_start(vgg, runs[0], folder, TrainConfig(data=str(root), out_dir="o", val_fraction=0.2))
    # The data it was trained with passes the check (and goes on to score the ensemble).
    _warm_start(vgg, runs[0], packed, TrainConfig(data=str(zpath), out_dir="o", val_fraction=0.2))
    # Untrained networks: whether averaging wins is chance; either way the split check passed and
    # the outcome is consistent with its scores.
    try:
        metrics = make_ensemble(runs, str(zpath), tmp_path / "out")
    except EnsembleNotBetter as exc:
        scores = exc.selection
        assert scores["ensemble"] <= max(scores["members"]) and not (tmp_path / "out" / "emotion.keras").exists()
    else:
        assert metrics["selection"]["ensemble"] > max(metrics["selection"]["members"])
        assert metrics["data_fingerprint"]["validation"] == fp["zip"]
    # --resume and averaging check the run's recorded split the same way.
    state = {"train_fingerprint": packed.fingerprint, "val_fingerprint": fp["zip"], "config": {"data": str(zpath)}}
    _check_run_data(state, packed, fp["zip"], str(zpath))
    with pytest.raises(WarmStartError, match=r"another order.*\(fer.zip\)"):
        _check_run_data(state, folder, fp["folder"], str(root))
    with pytest.raises(WarmStartError, match="not the training images"):
        _check_run_data({**state, "train_fingerprint": "0" * 16}, folder, fp["folder"], str(root))


def test_learning_rate_schedule_and_time_budget_plan():
    from engine.emotion.train import TrainConfig, learning_rate_at, plan_epochs

    cfg = TrainConfig(data="d", out_dir="o", epochs=100, learning_rate=1e-3, warmup_epochs=2)
    rates = [learning_rate_at(e, cfg, 40) for e in range(40)]
    assert rates[0] == pytest.approx(1e-4) and rates[1] == pytest.approx(5.5e-4)
    assert rates[2] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)  # peak, then 1 %
    assert all(a > b for a, b in zip(rates[2:], rates[3:]))
    assert learning_rate_at(45, cfg, 40) == pytest.approx(1e-5)  # past the plan: the floor
    # 100 s left at 3 s per epoch fits 33 more; never beyond --epochs, never below what is done.
    assert plan_epochs(cfg, 2, 100.0, 3.0) == 35
    assert plan_epochs(cfg, 2, 1e6, 3.0) == 100
    assert plan_epochs(cfg, 7, -5.0, 3.0) == 7


def test_augmentation_is_seeded_bounded_and_mirrors_half():
    from engine.emotion.augment import augment_faces, batches

    rng = np.random.default_rng(0)
    faces = np.zeros((400, 48, 48), np.uint8)
    faces[:, :, :24] = 200  # bright left half: a mirrored face is bright on the right
    out = augment_faces(faces, np.random.default_rng(1))
    assert out.shape == (400, 48, 48) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(out, augment_faces(faces, np.random.default_rng(1)))
    assert not np.array_equal(out, augment_faces(faces, np.random.default_rng(2)))
    mirrored = (out[:, 24, 40] > out[:, 24, 8]).mean()  # a row through the middle
    assert 0.4 < mirrored < 0.6
    # Small warps (shift and zoom up to 10 %, rotation up to 18 degrees): each face stays close to
    # the original or its mirror (an edge moved by 5 columns of 48 differs by ~20 on average).
    near = np.minimum(np.abs(out - faces).mean((1, 2)), np.abs(out - faces[:, :, ::-1]).mean((1, 2)))
    assert near.max() < 50 and 5 < near.mean() < 35
    # The batch-wide warp matrices are OpenCV's rotation-and-zoom about the centre, then the shift:
    # rebuild a few faces one by one from the same draws with cv2.getRotationMatrix2D.
    draw = np.random.default_rng(4)
    flips, angles = draw.random(6) < 0.5, draw.uniform(-18, 18, 6)
    scales, shifts, contrast = (
        draw.uniform(0.9, 1.1, 6),
        draw.uniform(-0.1, 0.1, (6, 2)) * 48,
        draw.uniform(0.8, 1.2, 6),
    )
    sample = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    for i, face in enumerate(augment_faces(sample, np.random.default_rng(4))):
        warp = cv2.getRotationMatrix2D((23.5, 23.5), angles[i], scales[i])
        warp[:, 2] += shifts[i]
        src = np.ascontiguousarray(sample[i, :, ::-1] if flips[i] else sample[i])
        moved = cv2.warpAffine(src, warp, (48, 48), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        expected = np.clip((moved - moved.mean()) * contrast[i] + moved.mean(), 0, 255)
        np.testing.assert_allclose(face, expected, atol=1e-3)

    images = rng.integers(0, 255, (50, 48, 48), dtype=np.uint8)
    targets = np.eye(7, dtype=np.float32)[np.arange(50) % 7]
    weights = np.arange(50, dtype=np.float32)
    data = batches(images, targets, weights, 16, seed=3, workers=1)
    assert len(data) == 4
    seen = []
    for epoch in range(2):
        got = [data[i] for i in range(len(data))]
        x = np.concatenate([g[0] for g in got])
        w = np.concatenate([g[2] for g in got]).astype(int)
        assert x.shape == (50, 48, 48, 1) and sorted(w) == list(range(50))  # every face once
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), targets[w])  # labels follow
        seen.append(w)
        data.on_epoch_end()
    assert not np.array_equal(seen[0], seen[1])  # reshuffled each epoch
    again = batches(images, targets, weights, 16, seed=3, workers=1)
    again.start_at_epoch(1)  # a resumed run sees what epoch 2 of an uninterrupted one saw
    np.testing.assert_array_equal(np.concatenate([again[i][2] for i in range(4)]).astype(int), seen[1])


def test_float16_model_file_halves_the_size_and_loads_back_as_float32(tmp_path):
    from engine.emotion.ensemble import build_ensemble
    from engine.emotion.model_file import load_model, rounded, save_model

    nets = _two_nets(tmp_path)
    ensemble = build_ensemble(nets)
    save_model(ensemble, tmp_path / "full.keras")
    save_model(ensemble, tmp_path / "half.keras", "float16")
    full, half = (tmp_path / "full.keras").stat().st_size, (tmp_path / "half.keras").stat().st_size
    assert 0.45 < half / full < 0.55
    loaded = load_model(tmp_path / "half.keras")
    assert {str(w.dtype) for w in loaded.weights} == {"float32"}
    assert [m.name for m in loaded.layers] == [m.name for m in ensemble.layers]
    for w, w0 in zip(loaded.get_weights(), ensemble.get_weights()):  # rounded to float16, no more
        np.testing.assert_array_equal(w, w0.astype(np.float16).astype(np.float32))
    for w, w0 in zip(rounded(ensemble, "float16").get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w, w0)  # what make_ensemble scores is what the file holds
    x = np.random.default_rng(0).integers(0, 255, (8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ensemble.predict(x, verbose=0), atol=5e-3)
    with pytest.raises(ValueError, match="unknown storage 'int4'"):
        save_model(ensemble, tmp_path / "x.keras", "int4")


def test_split_seed_defaults_to_the_seed_for_older_runs():
    from engine.emotion.runs import split_seed_of
    from engine.emotion.train import TrainConfig

    assert split_seed_of({"seed": 42}) == 42  # metrics.json of runs made before split_seed
    assert split_seed_of({"seed": 7, "split_seed": 42}) == 42
    assert split_seed_of(TrainConfig(data="d", out_dir="o", seed=3)) == 3
    assert split_seed_of(None) is None


def test_runs_that_average_their_tail_never_stop_early():
    from engine.emotion.train import TrainConfig, effective_patience

    assert effective_patience(TrainConfig(data="x", out_dir="y", epochs=40, patience=15)) == 15
    # A new cycle dips at its peak learning rate: stopping there would average the dip.
    assert effective_patience(TrainConfig(data="x", out_dir="y", epochs=40, patience=15, average_last=10)) > 40
    assert effective_patience(TrainConfig(data="x", out_dir="y", epochs=40, patience=0)) > 40


@pytest.mark.parametrize("arch", ["vgg", "res"])
def test_weight_average_and_batch_norm_recalibration(tmp_path, arch):
    import keras

    from engine.emotion.averaging import average_weights, recalibrate_batch_norm, save_snapshot
    from engine.emotion.model import make_model

    keras.utils.set_random_seed(1)
    a, b = make_model(arch), make_model(arch)
    save_snapshot(a, tmp_path, 1)
    save_snapshot(b, tmp_path, 2)
    target = make_model(arch)
    average_weights(target, list(snapshots(tmp_path).values()))
    for got, wa, wb in zip(target.get_weights(), a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, (wa + wb) / 2, rtol=1e-6, atol=1e-7)

    images = np.random.default_rng(2).integers(0, 255, (256, 48, 48), dtype=np.uint8)
    bn = next(l for l in target.layers if isinstance(l, keras.layers.BatchNormalization))
    conv = keras.Model(target.input, bn.input)  # what the first BN layer sees
    expected = np.asarray(conv(images[..., None].astype(np.float32))).mean(axis=(0, 1, 2))
    recalibrate_batch_norm(target, images, batch_size=64)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), expected, rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.99  # restored, like the dropout rates
    assert all(l.rate > 0 for l in target.layers if isinstance(l, keras.layers.Dropout))


@pytest.mark.integration  # a real FER2013 face (happy_frame)
def test_cli_predict_and_errors(tmp_path, happy_frame):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), happy_frame)
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "engine.emotion", *a],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    done = run("predict", str(img), "--json")
    assert done.returncode == 0, done.stderr[-1000:]
    faces = json.loads(done.stdout)["faces"]
    assert len(faces) == 1 and len(faces[0]["probabilities"]) == 7
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    bad = run("predict", str(tmp_path / "junk.jpg"), "--json")
    assert bad.returncode == 2 and "not a JPEG" in json.loads(bad.stdout)["error"]


@pytest.mark.integration
def test_cli_evaluate_reproduces_the_shipped_test_accuracy(fer_zip, capsys):
    """`evaluate` runs what the app serves (LiteRT) and must score what training recorded."""
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    assert emotion_cli.main(["evaluate", "--data", str(fer_zip), "--model", str(MODEL_DIR), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == metrics["n_images"] == 3589
    assert result["accuracy"] == metrics["accuracy"]
    assert result["confusion_matrix"] == metrics["confusion_matrix"]
    assert set(result["per_class"]) == set(EMOTIONS)


def test_litert_runs_the_same_networks():
    """The LiteRT conversions answer what Keras answers, for any batch size, from many threads."""
    import threading

    import keras

    from engine.emotion.lite import LiteNetwork, compile_networks
    from engine.emotion.model import ARCHITECTURES, make_model

    keras.utils.set_random_seed(11)
    nets = [make_model(arch) for arch in ARCHITECTURES]
    lites = compile_networks(nets)  # one conversion process for all three
    assert all(isinstance(lite, LiteNetwork) for lite in lites)
    faces = np.random.default_rng(5).integers(0, 255, (9, 48, 48, 1)).astype(np.float32)
    for net, lite in zip(nets, lites):
        want = net.predict(faces, verbose=0)
        assert np.abs(want - want.mean(0)).max() > 1e-4  # faces that the network tells apart
        for n in (1, 4, 9, 1):  # the buffers are re-planned whenever the batch size changes
            np.testing.assert_allclose(lite(faces[:n]), want[:n], atol=1e-5, err_msg=net.name)
        errors = []

        def hammer(k):
            for n in (1 + k, 2, 9):
                if np.abs(lite(faces[:n]) - want[:n]).max() > 1e-5:
                    errors.append((k, n))

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], net.name


def test_runtime_setting_and_fallback_to_tensorflow(monkeypatch, caplog):
    import keras

    from engine.emotion import lite
    from engine.emotion.model import make_model

    keras.utils.set_random_seed(12)
    net = make_model("small")
    faces = np.random.default_rng(6).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    fast = EmotionRecognizer(net)
    assert fast.runtime == "litert"
    monkeypatch.setenv("EMOTION_RUNTIME", "tensorflow")
    slow = EmotionRecognizer(net)
    assert slow.runtime == "tensorflow"
    np.testing.assert_allclose(fast.classify(faces), slow.classify(faces), atol=1e-5)
    monkeypatch.setenv("EMOTION_RUNTIME", "tflite")
    with pytest.raises(ValueError, match="EMOTION_RUNTIME='tflite': use one of litert, tensorflow"):
        EmotionRecognizer(net)
    # A network LiteRT cannot take: a warning, and TensorFlow runs it.
    monkeypatch.delenv("EMOTION_RUNTIME")

    def refuse(model):
        raise RuntimeError("converter refused the graph")

    monkeypatch.setattr(lite, "to_litert", refuse)
    with caplog.at_level("WARNING"):
        fallback = EmotionRecognizer(net)
    assert fallback.runtime == "tensorflow" and "converter refused the graph" in caplog.text
    np.testing.assert_allclose(fallback.classify(faces), slow.classify(faces), atol=1e-6)


def test_single_pass_agrees_with_flip_average(recognizer):
    faces = np.random.default_rng(5).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    one = recognizer.classify(faces, flip_average=False)
    both = recognizer.classify(faces)
    mirrored = recognizer.classify(faces[:, :, ::-1], flip_average=False)
    np.testing.assert_allclose(both, (one + mirrored) / 2, atol=1e-5)


def test_model_report_reads_the_shipped_metrics(tmp_path):
    from engine.emotion.report import ReportError, load_report

    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    report = load_report(MODEL_DIR)
    assert report.summary["accuracy"] == metrics["accuracy"]
    assert report.per_class["emotion"].tolist() == list(EMOTIONS)
    assert report.per_class["support"].sum() == metrics["n_images"]
    rows = report.confusion.sum(axis=1)
    assert ((rows - 1).abs() < 0.01).all()
    happy = EMOTIONS.index("happy")
    assert report.confusion.loc["happy", "happy"] == pytest.approx(
        metrics["confusion_matrix"][happy][happy] / sum(metrics["confusion_matrix"][happy]), abs=1e-3
    )
    validation = report.curve[report.curve["split"] == "validation"]
    nets = validation["run"].str.extract(r"^(net \d+)", expand=False).fillna("")
    assert nets.nunique() == report.summary["networks"] == len(metrics.get("members") or [0])
    for _, epochs in validation.groupby(nets)["epoch"]:
        # one axis over every run of a network's lineage
        assert epochs.tolist() == list(range(1, len(epochs) + 1))
    assert len(validation) == report.summary["epochs"]
    # One row per network with its own figures; they sum to the model's parameter count.
    members = metrics.get("members") or [metrics]
    assert report.networks["network"].tolist() == [f"net {i}" for i in range(1, len(members) + 1)]
    assert report.networks["parameters"].sum() == metrics["parameters"]
    assert report.networks["test accuracy"].tolist() == [(m.get("test") or m)["accuracy"] for m in members]
    assert len(report.summary["architectures"]) == report.networks["architecture"].nunique()
    backends = [{"jax": "JAX"}.get(m.get("backend"), "TensorFlow") for m in members]
    assert [t.split(" (")[0] for t in report.networks["trained with"]] == backends
    assert report.summary["storage"] == metrics.get("storage", "float32")

    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "labels": ["a", "b"]}))
    with pytest.raises(ReportError, match="not the metrics file training writes"):
        load_report(tmp_path)
    with pytest.raises(ReportError, match="no such file"):
        load_report(tmp_path / "nowhere")


@pytest.mark.integration  # a real FER2013 face (happy_frame)
def test_live_video_goes_on_after_a_frame_that_fails(recognizer, happy_frame, monkeypatch, caplog):
    """A frame whose analysis raises is logged and shown unannotated; the next frames are read as
    before (the stream's worker thread used to die with it, freezing the live view)."""
    from engine.emotion.live import FrameProcessor

    processor = FrameProcessor(recognizer, alpha=1.0)
    detect = processor.recognizer.detector.detect
    calls = []

    def fails_once(gray):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cascade broke")
        return detect(gray)

    monkeypatch.setattr(processor.recognizer.detector, "detect", fails_once)
    with caplog.at_level("ERROR", logger="engine.emotion.live"):
        out = processor.process(happy_frame)
    assert np.array_equal(out, happy_frame) and processor.errors == 1
    assert "could not be read" in caplog.text and "cascade broke" in caplog.text
    for _ in range(3):
        processor.process(happy_frame)
    reading = processor.latest()
    assert reading.faces == 1 and reading.label == "happy" and processor.frames == 4
