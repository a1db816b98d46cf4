"""Saved models: listing, switching and deleting (engine/recommender/model_store.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.recommender.model_store import (
    ModelError,
    current_model_dir,
    delete_model,
    list_models,
    saved_models,
    set_current,
)


@pytest.fixture()
def two_models(small_model, tmp_path):
    """A models folder holding the small model (current) and an older copy of it without top picks."""
    root, path, _ = small_model
    copy = tmp_path / "models"
    shutil.copytree(root, copy)
    older = copy / "als-19990101-000000-0001"
    shutil.copytree(copy / path.name, older)
    for table in ("pick_user_factors", "pick_item_factors"):
        (older / f"{table}.parquet").unlink()
    metrics = older / "metrics.json"
    saved = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({k: v for k, v in saved.items() if "picks_" not in k}))
    return copy, path.name, older.name


def test_saved_models_describe_each_model_newest_first(two_models, small_model):
    root, newest, older = two_models
    rows = saved_models(root)
    assert [r["model"] for r in rows] == [newest, older]
    assert [r["current"] for r in rows] == [True, False]
    first = rows[0]
    metrics, params = small_model[2]["metrics"], small_model[2]["params"]
    assert first["test_rmse"] == metrics["test_rmse"]
    assert first["top_picks_ndcg_at_10"] == metrics["top_picks_ndcg_at_10"] == metrics["ranking"]["picks"]["ndcg_at_k"]
    assert (first["rank"], first["max_iter"], first["reg_param"]) == (
        params["rank"],
        params["max_iter"],
        params["reg_param"],
    )
    assert first["dataset"] == "ml-test" and first["ratings"] == params["dataset"]["n_ratings"]
    assert rows[1]["top_picks_ndcg_at_10"] is None and 0 < rows[1]["size_mb"] < first["size_mb"]
    assert len(first["trained"]) == 16 and not first["tuned"]


def test_a_model_saved_before_the_keys_named_their_ranker_is_read_by_the_old_names(small_model, tmp_path):
    """metrics.json of models saved before `top_picks_…`/`rating_order_…` has only `picks_…`/`ndcg_at_10`."""
    root, path, result = small_model
    copy = tmp_path / "models"
    shutil.copytree(root, copy)
    metrics = copy / path.name / "metrics.json"
    saved = json.loads(metrics.read_text())
    old = {
        k: v for k, v in saved.items() if not k.startswith(("top_picks_", "rating_order_")) and k != "deprecated_keys"
    }
    metrics.write_text(json.dumps(old))
    row = next(r for r in saved_models(copy) if r["model"] == path.name)
    assert row["top_picks_ndcg_at_10"] == result["metrics"]["ranking"]["picks"]["ndcg_at_k"]


def test_delete_keeps_the_current_model_and_names_what_is_wrong(two_models):
    root, current, older = two_models
    with pytest.raises(ModelError, match=f"{current} is the current model.*--use {older}"):
        delete_model(root, current)
    for bad in ("nope", "../models", "CURRENT", ""):
        with pytest.raises(ModelError, match="No model named .* Saved models: "):
            delete_model(root, bad)
    (root / f".trash-{older}-from-a-crash").mkdir()  # what a delete killed half-way leaves
    freed = delete_model(root, older)
    assert freed > 0 and not (root / older).exists() and not list(root.glob(".trash-*"))
    assert [m.name for m in list_models(root)] == [current] and current_model_dir(root).name == current
    with pytest.raises(ModelError, match="it is the only one saved"):
        delete_model(root, current)


def test_a_deleted_model_can_no_longer_be_made_current(two_models):
    root, current, older = two_models
    set_current(root, older)
    delete_model(root, current)  # no longer current: allowed
    with pytest.raises(ModelError, match="No model named"):
        set_current(root, current)
    assert [r["model"] for r in saved_models(root)] == [older] and saved_models(root)[0]["current"]
