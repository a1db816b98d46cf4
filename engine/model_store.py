"""Saved ALS models: one folder per model under the models directory, plus a pointer.

A model folder holds::

    params.json           hyper-parameters, global mean, dataset name + fingerprint
    metrics.json          test RMSE, baselines, ranking metrics
    cv.json               cross-validation table (when the model came from tuning)
    user_factors.parquet  userId, user_bias, f0..f{rank-1}
    item_factors.parquet  movieId, item_bias, n_ratings, f0..f{rank-1}
    movies.parquet        catalogue (title, genres, year, IMDb/TMDB ids)
    ratings.parquet       every known rating, for history and "already rated"
    pick_user_factors.parquet, pick_item_factors.parquet
                          implicit-ALS factors that order top picks (engine.picks);
                          models saved before them still load, without top picks
    spark_model/          Spark's own ALSModel (for Spark jobs such as LSH)

Folders are written under a temporary name and renamed when complete, and the
``CURRENT`` pointer is replaced atomically, so a crash never leaves a half model
in use.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd

FORMAT_VERSION = 1
CURRENT = "CURRENT"
TABLES = ("user_factors", "item_factors", "movies", "ratings")
PICK_TABLES = ("pick_user_factors", "pick_item_factors")


class ModelError(RuntimeError):
    """A saved model is missing, incomplete, corrupt or does not match the data."""


class NoModelYet(ModelError):
    """No model has been trained into this folder yet (no CURRENT pointer): a first run."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model(root: str | Path, *, params: dict, metrics: dict, tables: dict[str, pd.DataFrame],
               spark_model=None, cv: dict | None = None, make_current: bool = True,
               name: str | None = None) -> Path:
    """Write a complete model folder atomically; returns its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = name or time.strftime("als-%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "params.json").write_text(json.dumps({"format": FORMAT_VERSION, **params}, indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cv is not None:
        (tmp / "cv.json").write_text(json.dumps(cv, indent=2))
    for table in TABLES + tuple(t for t in PICK_TABLES if t in tables):
        tables[table].to_parquet(tmp / f"{table}.parquet", index=False)
    if spark_model is not None:
        spark_model.write().overwrite().save(str((tmp / "spark_model").resolve()))
    final = root / name
    os.replace(tmp, final)
    if make_current:
        set_current(root, name)
    return final


def set_current(root: str | Path, name: str) -> None:
    root = Path(root)
    if not (root / name / "params.json").exists():
        raise ModelError(f"No model named {name!r} in {root}.")
    atomic_write_text(root / CURRENT, name + "\n")


def current_model_dir(root: str | Path) -> Path:
    """The folder the CURRENT pointer names; :class:`ModelError` when there is none."""
    root = Path(root)
    pointer = root / CURRENT
    if not pointer.exists():
        raise NoModelYet(f"No trained model in {root}. Train one with `python -m engine train` "
                         "(or the button on the app's home page).")
    folder = root / pointer.read_text().strip()
    if not folder.is_dir():
        raise ModelError(f"{pointer} names {folder.name!r}, which does not exist. Train a new "
                         "model or point CURRENT at one of: "
                         f"{', '.join(m.name for m in list_models(root)) or 'none'}.")
    return folder


def list_models(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and (p / "params.json").exists()),
                  reverse=True)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def model_summary(folder: str | Path, current: str | None = None) -> dict:
    """One saved model as a row of a table: what it was trained on and how well it did.

    ``current`` is the current model's name (``True`` in column ``current`` for it);
    ``trained`` is when it was saved (UTC, from its params.json); ``picks_ndcg_at_10`` is
    None for models saved before top picks.
    """
    folder = Path(folder)
    params, metrics = read_params(folder), read_json(folder, "metrics.json")
    ds = params.get("dataset", {})
    return {"model": folder.name, "current": folder.name == current,
            "trained": time.strftime("%Y-%m-%d %H:%M", time.gmtime((folder / "params.json").stat().st_mtime)),
            "dataset": ds.get("name"), "ratings": ds.get("n_ratings"), "rank": params.get("rank"),
            "max_iter": params.get("max_iter"), "reg_param": params.get("reg_param"),
            "test_rmse": metrics.get("test_rmse"), "picks_ndcg_at_10": metrics.get("picks_ndcg_at_10"),
            "tuned": (folder / "cv.json").exists(), "size_mb": round(_folder_bytes(folder) / 2**20, 2)}


def _current_name(root: str | Path) -> str | None:
    """The current model's name, or None when there is none (or CURRENT names a missing one)."""
    try:
        return current_model_dir(root).name
    except ModelError:
        return None


def saved_models(root: str | Path) -> list[dict]:
    """:func:`model_summary` of every saved model, newest first."""
    current = _current_name(root)
    folders = sorted(list_models(root), key=lambda f: (f / "params.json").stat().st_mtime, reverse=True)
    return [model_summary(folder, current) for folder in folders]   # stable: same time, by name


def delete_model(root: str | Path, name: str) -> int:
    """Delete the saved model ``name`` (not the current one); returns the bytes freed.

    The folder is first renamed out of sight (``.trash-NAME``, which :func:`list_models`
    skips) in one atomic step, then removed: a crash half-way leaves no half model
    listed, and the next delete clears what it left behind.
    """
    root = Path(root)
    known = {m.name: m for m in list_models(root)}
    if name not in known:
        raise ModelError(f"No model named {name!r} in {root}. Saved models: "
                         f"{', '.join(known) or 'none'}.")
    if name == _current_name(root):
        others = [m for m in known if m != name]
        raise ModelError(f"{name} is the current model, the one being served: make another model current "
                         "first" + (f" (e.g. `python -m engine models --use {others[0]}`)." if others
                                    else "; it is the only one saved."))
    size = _folder_bytes(known[name])
    for leftover in root.glob(".trash-*"):   # what an earlier delete left behind
        shutil.rmtree(leftover, ignore_errors=True)
    trash = root / f".trash-{name}"
    os.replace(known[name], trash)
    shutil.rmtree(trash)
    return size


def read_json(model_dir: str | Path, name: str) -> dict:
    path = Path(model_dir) / name
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is corrupt ({exc}). Retrain the model.") from exc


def read_params(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    params = read_json(model_dir, "params.json")
    if not params:
        raise ModelError(f"{model_dir} is not a model folder (no params.json). Retrain the model.")
    if params.get("format") != FORMAT_VERSION:
        raise ModelError(f"{model_dir} was saved in format {params.get('format')!r}; this version "
                         f"reads format {FORMAT_VERSION}. Retrain the model.")
    return params


def check_dataset(model_dir: str | Path, fingerprint: str) -> None:
    """Raise :class:`ModelError` when the model was trained on other data."""
    params = read_params(model_dir)
    trained = params.get("dataset", {})
    if trained.get("fingerprint") != fingerprint:
        raise ModelError(f"Model {Path(model_dir).name} was trained on {trained.get('name')} "
                         f"(fingerprint {trained.get('fingerprint')}), not on the data now "
                         f"configured (fingerprint {fingerprint}). Retrain, or point "
                         "MOVIELENS_DATA at the data it was trained on.")


def read_serving_tables(model_dir: str | Path) -> dict:
    """What :meth:`engine.serving.RecommenderIndex.from_frames` needs."""
    model_dir = Path(model_dir)
    params = read_params(model_dir)
    frames = {}
    # Top-picks tables are optional (older models lack them), but never half there.
    has_picks = "picks" in params or any((model_dir / f"{t}.parquet").exists() for t in PICK_TABLES)
    for table in TABLES + (PICK_TABLES if has_picks else ()):
        path = model_dir / f"{table}.parquet"
        if not path.exists():
            raise ModelError(f"{model_dir} is incomplete: {path.name} is missing. Retrain the model.")
        try:
            frames[table] = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise ModelError(f"{path} is corrupt ({type(exc).__name__}: {exc}). "
                             "Retrain the model.") from exc
    try:
        out = {"mu": params["mu"], "reg_param": params["reg_param"],
               "user_bias_reg": params["user_bias_reg"],
               "user_frame": frames["user_factors"], "item_frame": frames["item_factors"],
               "movies": frames["movies"], "ratings": frames["ratings"]}
        if has_picks:
            out.update(pick_user_frame=frames["pick_user_factors"],
                       pick_item_frame=frames["pick_item_factors"],
                       pick_params={"alpha": params["picks"]["alpha"],
                                    "reg_param": params["picks"]["reg_param"]})
        return out
    except KeyError as exc:
        raise ModelError(f"{model_dir}/params.json lacks {exc}. Retrain the model.") from exc
