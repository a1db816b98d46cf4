"""Saved models that are broken end in a clear message (issue 23, items 8, 11, 12 and 17).

A bad CURRENT pointer, a name outside the models folder, a table of the wrong shape or with
NaN factors, and the half-written folders of a killed save: each is a ModelError naming the
file and what to do, in the engine, the CLI and the app.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, cli_env
from engine.recommender.model_store import (
    CURRENT,
    ModelError,
    clean_leftovers,
    current_model_dir,
    list_models,
    save_model,
    saved_models,
    set_current,
)
from engine.recommender.serving import RecommenderIndex

pytestmark = pytest.mark.spark  # the small model is trained once per run, on the shared session

#: What a CURRENT pointer can hold that names no model (the "../" one names a real model elsewhere).
BAD_POINTERS = {
    "binary": b"\x80\x81",
    "empty": b"",
    "blank": b" \n",
    "outside": b"../elsewhere/NAME\n",
    "hidden": b".tmp-NAME\n",
    "missing": b"als-gone\n",
}


@pytest.fixture()
def models(small_model, tmp_path):
    """A copy of the small model's folder (its model current) and a copy of the model outside it."""
    root, path, _ = small_model
    copy = tmp_path / "models"
    shutil.copytree(root, copy)
    shutil.copytree(path, tmp_path / "elsewhere" / path.name)
    return copy, path.name


def point(root, name: str, content: bytes | None) -> None:
    """CURRENT as given: bytes (NAME replaced by the model's name), or None for a folder."""
    pointer = root / CURRENT
    shutil.rmtree(pointer) if pointer.is_dir() else pointer.unlink()
    if content is None:
        pointer.mkdir()
    else:
        pointer.write_bytes(content.replace(b"NAME", name.encode()))


# ---------------------------------------------------------------------- CURRENT and model names
@pytest.mark.parametrize("kind", [*BAD_POINTERS, "folder"])
def test_a_bad_current_pointer_names_the_file_and_the_fix(models, kind):
    root, name = models
    if kind == "hidden":  # a half-written save with every file: still not a model to serve
        shutil.copytree(root / name, root / f".tmp-{name}")
    point(root, name, BAD_POINTERS.get(kind))
    with pytest.raises(ModelError) as err:
        current_model_dir(root)
    message = str(err.value)
    assert message.startswith(str(root / CURRENT)) and "models --use NAME" in message
    assert f"Saved models: {name}." in message
    assert saved_models(root)[0]["model"] == name and not saved_models(root)[0]["current"]


def test_use_takes_only_the_plain_name_of_a_saved_model(models):
    root, name = models
    shutil.copytree(root / name, root / f".tmp-{name}")
    for bad, why in (
        (f"../elsewhere/{name}", "plain folder name"),
        ("", "cannot be empty"),
        (f".tmp-{name}", "hidden folder"),
        (f"{name}/", "plain folder name"),
        ("nope", "No model named 'nope'"),
    ):
        with pytest.raises(ModelError, match=why):
            set_current(root, bad)
        assert (root / CURRENT).read_text() == f"{name}\n"
    (root / name / "ratings.parquet").rename(root / "ratings.parquet")
    with pytest.raises(ModelError, match="not a complete model .*lacks ratings.parquet"):
        set_current(root, name)


def run_cli(env, *args):
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0])


@pytest.mark.slow
def test_cli_refuses_bad_names_and_explains_a_bad_pointer(models, small_release):
    root, name = models
    env = cli_env(MODEL_DIR=root, MOVIELENS_DATA=small_release)
    for bad in (f"../elsewhere/{name}", ""):
        code, out = run_cli(env, "models", "--use", bad)
        assert code == 3 and "No model named" in out["error"], out
        assert (root / CURRENT).read_text() == f"{name}\n"
    for content, what in ((b"\x80\x81", "not UTF-8"), (None, "is a folder")):
        point(root, name, content)
        code, out = run_cli(env, "recommend", "--user", "1")
        assert code == 3 and out["error"].startswith(f"{root / CURRENT} ") and what in out["error"], out
        assert "models --use NAME" in out["error"]
        code, out = run_cli(env, "models")  # the list still works: it is how one picks a model
        assert code == 0 and [(r["model"], r["current"]) for r in out["models"]] == [(name, False)]
        assert what in out["current_error"]
    code, out = run_cli(env, "models", "--use", name)  # the fix: CURRENT, a folder, is replaced
    assert code == 0 and (root / CURRENT).read_text() == f"{name}\n"


# ---------------------------------------------------------------------- tables checked at load
def _nan_factor(frame):
    frame.loc[3, "f0"] = np.nan


DAMAGE = {  # what is done to a saved model: table, change, words the message must contain
    "a column missing": (
        "item_factors",
        lambda f: f.drop(columns=["item_bias"]),
        "item_factors.parquet lacks the column(s) item_bias",
    ),
    "a factor column missing": ("user_factors", lambda f: f.drop(columns=["f1"]), "lacks the factor columns"),
    "NaN factors": ("user_factors", _nan_factor, "user_factors.parquet has 1 row(s) whose factors are NaN"),
    "infinite bias": ("item_factors", lambda f: f.assign(item_bias=np.inf), "column item_bias has"),
    "ids as text": (
        "movies",
        lambda f: f.assign(movieId=f["movieId"].astype(str)),
        "column movieId holds object, not integers",
    ),
    "repeated ids": ("user_factors", lambda f: pd.concat([f, f.head(1)]), "column userId repeats the id"),
    "NaN top-picks factors": ("pick_item_factors", _nan_factor, "pick_item_factors.parquet has 1 row"),
    "ranks that disagree": (
        "item_factors",
        lambda f: f.assign(**{f"f{sum(c.startswith('f') for c in f)}": 0.5}),
        "must agree",
    ),
}


def damage(folder, table: str, change) -> None:
    path = folder / f"{table}.parquet"
    frame = pd.read_parquet(path)
    out = change(frame)
    (frame if out is None else out).to_parquet(path, index=False)


@pytest.mark.parametrize("what", DAMAGE)
def test_a_table_of_the_wrong_shape_is_a_model_error_naming_the_file(models, what):
    root, name = models
    table, change, words = DAMAGE[what]
    damage(root / name, table, change)
    with pytest.raises(ModelError) as err:
        RecommenderIndex.load(root / name)
    message = str(err.value)
    assert words in message and "models --use NAME" in message
    assert message.startswith(str(root / name / f"{table}.parquet "))


def test_a_nan_in_params_is_a_model_error(models):
    root, name = models
    params = root / name / "params.json"
    params.write_text(params.read_text().replace('"mu": ', '"mu": NaN, "was": ', 1))
    with pytest.raises(ModelError, match="params.json has mu = nan, not a finite number"):
        RecommenderIndex.load(root / name)


# ---------------------------------------------------------------------- leftovers of killed saves
def test_a_save_removes_what_killed_saves_left_and_keeps_a_running_one(models, small_model):
    root, name = models
    result = small_model[2]
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid: a save that was killed
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    host = socket.gethostname()
    try:
        owners = {
            "killed": f"{host} {finished.pid}",
            "running": f"{host} {running.pid}",
            "other-host": f"elsewhere.example {finished.pid}",
            "no-owner": None,
            "old": None,
        }
        for leftover, owner in owners.items():
            folder = root / f".tmp-als-{leftover}"
            shutil.copytree(root / name, folder)
            if owner:
                (folder / ".owner").write_text(owner + "\n")
        old = time.time() - 7 * 3600  # untouched for 7 hours
        for path in [root / ".tmp-als-old", *(root / ".tmp-als-old").rglob("*")]:
            os.utime(path, (old, old))
        saved = save_model(root, params=result["params"], metrics=result["metrics"], tables=result["tables"])
    finally:
        running.kill()
        running.wait()
    left = sorted(p.name for p in root.glob(".tmp-*"))
    assert left == [".tmp-als-no-owner", ".tmp-als-other-host", ".tmp-als-running"]
    assert saved.is_dir() and not (saved / ".owner").exists() and current_model_dir(root) == saved
    assert clean_leftovers(root) == [".tmp-als-running"]  # its process has ended now
    assert clean_leftovers(root, max_age_s=-1) == [".tmp-als-no-owner", ".tmp-als-other-host"]


def test_a_failed_save_leaves_no_folder(models, small_model):
    root, name = models
    result = small_model[2]
    tables = {k: v for k, v in result["tables"].items() if k != "ratings"}
    with pytest.raises(KeyError):
        save_model(root, params=result["params"], metrics=result["metrics"], tables=tables)
    assert not list(root.glob(".tmp-*")) and [m.name for m in list_models(root)] == [name]
    assert current_model_dir(root).name == name


# ---------------------------------------------------------------------- the app
from test_app import app_env  # noqa: E402,F401  (fixture)


def shown(element) -> str:
    """A message's text as read on screen (without markdown escapes)."""
    return element.value.replace("\\", "")


@pytest.fixture()
def app_models(app_env, models, monkeypatch):
    """test_app's app environment, on the copied models folder."""
    monkeypatch.setenv("MODEL_DIR", str(models[0]))
    return models


@pytest.mark.slow
def test_every_page_renders_with_a_garbage_pointer_and_the_model_page_fixes_it(app_models):
    from test_app import PAGES, no_exception, open_page

    root, name = app_models
    point(root, name, b"\x80\x81")
    for page in PAGES:
        at = open_page(page)
        no_exception(at)
        if page != "pages/statistics.py":  # statistics needs no model
            assert any(shown(w).startswith(f"{root / CURRENT} is not a text file") for w in at.warning), page
    at = open_page("pages/model.py")
    assert at.dataframe[-1].value[["model", "current"]].values.tolist() == [[name, False]]
    at.selectbox(key="pick_model").set_value(name).run()
    at.button(key="use_model").click().run()
    no_exception(at)
    assert (root / CURRENT).read_text() == f"{name}\n" and not at.warning


@pytest.mark.slow
def test_a_model_with_nan_factors_is_a_message_on_its_pages(app_models):
    from test_app import no_exception, open_page

    root, name = app_models
    damage(root / name, "item_factors", _nan_factor)
    for page in ("pages/recommendations.py", "pages/similar.py"):
        at = open_page(page)
        no_exception(at)
        assert any("item_factors.parquet has 1 row(s) whose factors are NaN" in shown(e) for e in at.error), page
