"""Saved ALS models: one folder per model under the models directory, plus a pointer.

A model folder holds::

    params.json           hyper-parameters, global mean, dataset name + fingerprint
    metrics.json          test RMSE, baselines, ranking metrics
    cv.json               cross-validation table (when the model came from tuning)
    user_factors.parquet  userId, user_bias, f0..f{rank-1}
    item_factors.parquet  movieId, item_bias, n_ratings, f0..f{rank-1}
    movies.parquet        catalogue (title, genres, year, IMDb/TMDB ids)
    ratings.parquet       every known rating, for history and "already rated": userId, movieId,
                          rating, sorted by user (int32/float32 where exact; older models'
                          unsorted int64/float64 tables still load)
    pick_user_factors.parquet, pick_item_factors.parquet
                          implicit-ALS factors that order top picks (engine.recommender.picks);
                          models saved before them still load, without top picks
    spark_model/          Spark's own ALSModel (for Spark jobs such as LSH)

Folders are written under a temporary name and renamed when complete, and the
``CURRENT`` pointer is replaced atomically, so a crash never leaves a half model
in use. What a killed save leaves (``.tmp-NAME`` folders) is removed by the next
save (:func:`clean_leftovers`).

Everything read from disk is checked: ``CURRENT`` must name a saved model by its
plain folder name (:func:`check_model_name`), and the tables must have the columns,
types and finite factors serving needs (:mod:`engine.recommender.model_tables` reads
them back); anything else is a :class:`ModelError` that names the file and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation import ranking_metric

FORMAT_VERSION = 1
CURRENT = "CURRENT"
TABLES = ("user_factors", "item_factors", "movies", "ratings")
PICK_TABLES = ("pick_user_factors", "pick_item_factors")
#: the predicted stars' movie neighbours (engine.recommender.neighbours), with params.json's "blend"
BLEND_TABLES = ("neighbours",)
#: top picks' EASE Gram (engine.recommender.ease), with params.json's "ease"
EASE_TABLES = ("ease_gram",)
LEFTOVER_PREFIX = ".tmp-"
OWNER_FILE = ".owner"  # in a folder being saved: "host pid" of the saving process
LEFTOVER_AGE_S = 6 * 3600  # a save takes seconds; untouched this long, its folder is dead
FIX = (
    "Make a saved model current (`python -m engine models --use NAME`, or Saved models on the "
    "app's Model page) or train a new one (`python -m engine train`)."
)

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """A saved model is missing, incomplete, corrupt or does not match the data."""


class NoModelYet(ModelError):
    """No model has been trained into this folder yet (no CURRENT pointer): a first run."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model(
    root: str | Path,
    *,
    params: dict,
    metrics: dict,
    tables: dict[str, pd.DataFrame],
    spark_model=None,
    cv: dict | None = None,
    make_current: bool = True,
    name: str | None = None,
) -> Path:
    """Write a complete model folder atomically; returns its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)  # killed saves' .tmp- folders: dead owner pid, or untouched for hours
    name = name or time.strftime("als-%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"
    tmp = root / f"{LEFTOVER_PREFIX}{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_model(tmp, params, metrics, tables, spark_model, cv)
    except BaseException:  # an error or Ctrl-C: leave nothing behind (a kill: clean_leftovers)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = root / name
    os.replace(tmp, final)
    if make_current:
        set_current(root, name)
    return final


def _write_model(tmp: Path, params: dict, metrics: dict, tables: dict, spark_model, cv) -> None:
    (tmp / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    (tmp / "params.json").write_text(json.dumps({"format": FORMAT_VERSION, **params}, indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cv is not None:
        (tmp / "cv.json").write_text(json.dumps(cv, indent=2))
    for table in TABLES + tuple(t for t in PICK_TABLES + BLEND_TABLES + EASE_TABLES if t in tables):
        if table == "ratings" and not isinstance(tables[table], pd.DataFrame):
            write_spark_ratings(tables[table], tmp / "ratings.parquet")
            continue
        frame = compact_ratings(tables[table]) if table == "ratings" else tables[table]
        frame.to_parquet(tmp / f"{table}.parquet", index=False)
    if spark_model is not None:
        spark_model.write().overwrite().save(str((tmp / "spark_model").resolve()))
    (tmp / OWNER_FILE).unlink()


def write_spark_ratings(ratings, path: Path) -> None:
    """A Spark DataFrame of ratings written by Spark as :func:`compact_ratings` lays them out: one
    Parquet file sorted by user, int32 ids and float32 ratings. The ratings never pass through the
    driver: Spark writes one part file into a scratch folder beside ``path``, which is then renamed."""
    from pyspark.sql import functions as F

    scratch = path.with_name(f".{path.name}.spark")
    (
        ratings.select(F.col("userId").cast("int"), F.col("movieId").cast("int"), F.col("rating").cast("float"))
        .repartition(1)
        .sortWithinPartitions("userId", "movieId")
        .write.mode("overwrite")
        .parquet(scratch.resolve().as_uri())
    )
    parts = sorted(scratch.glob("part-*.parquet"))
    if len(parts) != 1:
        raise ModelError(f"Spark wrote {len(parts)} files for {path.name} in {scratch} (expected one).")
    os.replace(parts[0], path)
    shutil.rmtree(scratch, ignore_errors=True)


def compact_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings table as saved: sorted by user, stably (each user's ratings keep their order), so
    serving builds its per-user rows without a sort; ids as int32 and ratings as float32 where that
    loses nothing (12 bytes a rating, not 24: 0.4 GB for ml-32m)."""
    if not {"userId", "movieId", "rating"} <= set(ratings.columns):
        return ratings  # not a ratings table; check_tables names what it lacks when it is read
    users = ratings["userId"].to_numpy()
    if pd.api.types.is_integer_dtype(users) and len(users) > 1 and (users[1:] < users[:-1]).any():
        ratings = ratings.iloc[np.argsort(users, kind="stable")]
    cast = {}
    for column in ("userId", "movieId"):
        values = ratings[column]
        if (
            pd.api.types.is_integer_dtype(values)
            and values.dtype != np.int32
            and (values.empty or (values.min() >= -(2**31) and values.max() < 2**31))
        ):
            cast[column] = np.int32
    rating = ratings["rating"]
    if (
        pd.api.types.is_float_dtype(rating)
        and rating.dtype != np.float32
        and np.array_equal(rating.to_numpy().astype(np.float32), rating.to_numpy(), equal_nan=True)
    ):
        cast["rating"] = np.float32
    return ratings.astype(cast).reset_index(drop=True) if cast else ratings.reset_index(drop=True)


def _newest_change(folder: Path) -> float:
    return max([folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.rglob("*")])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_leftovers(root: str | Path, max_age_s: float = LEFTOVER_AGE_S) -> list[str]:
    """Remove the ``.tmp-*`` folders of saves that died (a killed ``train``); returns their names.

    A save running now in another process must keep its folder, so a leftover is removed only
    when (a) its ``.owner`` file names a process on this host that no longer runs, or (b) nothing
    in it changed for ``max_age_s`` (a save writes its files within a minute; this covers
    folders without an owner file or saved from another host sharing the folder). A live pid
    (even a reused one) keeps the folder until (b).
    """
    root, removed, host = Path(root), [], socket.gethostname()
    for folder in sorted(root.glob(f"{LEFTOVER_PREFIX}*")):
        try:
            if not folder.is_dir():
                continue
            owner = (folder / OWNER_FILE).read_text().split() if (folder / OWNER_FILE).is_file() else []
            dead = len(owner) == 2 and owner[0] == host and owner[1].isdigit() and not _pid_alive(int(owner[1]))
            if dead or time.time() - _newest_change(folder) > max_age_s:
                shutil.rmtree(folder)
                removed.append(folder.name)
        except OSError as exc:  # e.g. removed meanwhile by another cleaner: not our business
            log.warning("could not clean up %s: %s", folder, exc)
    if removed:
        log.info("removed the leftovers of interrupted saves in %s: %s", root, ", ".join(removed))
    return removed


def _saved_names(root: Path) -> str:
    return ", ".join(m.name for m in list_models(root)) or "none"


_MISSING = "which does not exist"


def _name_problem(root: Path, name, complete: bool = True) -> str | None:
    """What is wrong with ``name`` as a saved model's name in ``root`` (None: nothing)."""
    if not isinstance(name, str) or not name.strip():
        return "a model name cannot be empty"
    if name != name.strip() or any(c in name for c in "/\\\0") or name in (".", ".."):
        return "a model name is a plain folder name inside the models folder (no path, '/', '\\' or '..')"
    if name.startswith("."):
        return "a name starting with '.' is a hidden folder (a half-written save, a deleted model), not a model"
    if not (root / name).is_dir():
        return _MISSING
    needed = ("params.json", *(f"{t}.parquet" for t in TABLES)) if complete else ("params.json",)
    missing = [f for f in needed if not (root / name / f).is_file()]
    if missing:
        return f"a folder that is not a complete model (it lacks {', '.join(missing)}): retrain, or delete it"
    return None


def check_model_name(root: str | Path, name: str, complete: bool = True) -> Path:
    """The folder of the saved model ``name``; :class:`ModelError` unless ``name`` is a plain
    folder name (no path, not hidden, not a half-written ``.tmp-`` folder) of a model inside
    ``root`` with all its files (only params.json when not ``complete``: enough to delete it).
    Used for ``--use``, ``--delete`` and the name ``CURRENT`` holds."""
    root = Path(root)
    problem = _name_problem(root, name, complete)
    if problem:
        why = "" if problem == _MISSING else f": {problem}"
        raise ModelError(f"No model named {name!r} in {root}{why}. Saved models: {_saved_names(root)}.")
    return root / name


def set_current(root: str | Path, name: str) -> None:
    root = Path(root)
    check_model_name(root, name)
    pointer = root / CURRENT
    if pointer.is_dir() and not pointer.is_symlink():  # a broken pointer: an empty folder is replaced
        try:
            pointer.rmdir()
        except OSError:
            raise ModelError(
                f"{pointer} is a folder with files in it, where the one-line file naming the "
                "current model belongs: move it away, then make a model current again."
            ) from None
    atomic_write_text(pointer, name + "\n")


def current_model_dir(root: str | Path) -> Path:
    """The folder the CURRENT pointer names; :class:`ModelError` (naming the pointer file and
    what to do) when there is none or the pointer is unreadable, empty or names no model."""
    root = Path(root)
    pointer = root / CURRENT
    if not pointer.exists():
        raise NoModelYet(
            f"No trained model in {root}. Train one with `python -m engine train` "
            "(or the button on the app's home page)."
        )
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
        problem = "is empty; it should name the current model" if not name else None
    except IsADirectoryError:
        problem = "is a folder; it should be a one-line file naming the current model (remove the folder)"
    except UnicodeDecodeError as exc:
        problem = (
            f"is not a text file naming a model (byte {exc.object[exc.start]:#04x} at offset {exc.start} is not UTF-8)"
        )
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    if problem is None and (problem := _name_problem(root, name)):
        problem = f"names {name!r}, {problem}"
    if problem:
        raise ModelError(f"{pointer} {problem}. {FIX} Saved models: {_saved_names(root)}.")
    return root / name


def current_name(root: str | Path) -> str | None:
    """The current model's name, or None when there is none or CURRENT is broken."""
    try:
        return current_model_dir(root).name
    except ModelError:
        return None


def list_models(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "params.json").exists()),
        reverse=True,
    )


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def model_summary(folder: str | Path, current: str | None = None) -> dict:
    """One saved model as a row of a table: what it was trained on and how well it did.

    ``current`` is the current model's name (``True`` in column ``current`` for it);
    ``trained`` is when it was saved (UTC, from its params.json); ``top_picks_ndcg_at_10`` (the app's
    default order) is None for models saved before top picks.
    """
    folder = Path(folder)
    params, metrics = read_params(folder), read_json(folder, "metrics.json")
    ds = params.get("dataset", {})
    return {
        "model": folder.name,
        "current": folder.name == current,
        "trained": time.strftime("%Y-%m-%d %H:%M", time.gmtime((folder / "params.json").stat().st_mtime)),
        "dataset": ds.get("name"),
        "ratings": ds.get("n_ratings"),
        "rank": params.get("rank"),
        "max_iter": params.get("max_iter"),
        "reg_param": params.get("reg_param"),
        "test_rmse": metrics.get("test_rmse"),
        "top_picks_ndcg_at_10": ranking_metric(metrics, "picks"),
        "tuned": (folder / "cv.json").exists(),
        "size_mb": round(_folder_bytes(folder) / 2**20, 2),
    }


def saved_models(root: str | Path) -> list[dict]:
    """:func:`model_summary` of every saved model, newest first."""
    current = current_name(root)
    folders = sorted(list_models(root), key=lambda f: (f / "params.json").stat().st_mtime, reverse=True)
    return [model_summary(folder, current) for folder in folders]  # stable: same time, by name


def delete_model(root: str | Path, name: str) -> int:
    """Delete the saved model ``name`` (not the current one); returns the bytes freed.

    The folder is first renamed out of sight (``.trash-NAME``, which :func:`list_models`
    skips) in one atomic step, then removed: a crash half-way leaves no half model
    listed, and the next delete clears what it left behind.
    """
    root = Path(root)
    folder = check_model_name(root, name, complete=False)  # a broken model can still be deleted
    if name == current_name(root):
        others = [m.name for m in list_models(root) if m.name != name]
        raise ModelError(
            f"{name} is the current model, the one being served: make another model current "
            "first"
            + (f" (e.g. `python -m engine models --use {others[0]}`)." if others else "; it is the only one saved.")
        )
    size = _folder_bytes(folder)
    for leftover in root.glob(".trash-*"):  # what an earlier delete left behind
        shutil.rmtree(leftover, ignore_errors=True)
    trash = root / f".trash-{name}"
    os.replace(folder, trash)
    shutil.rmtree(trash)
    return size


def read_json(model_dir: str | Path, name: str) -> dict:
    path = Path(model_dir) / name
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is corrupt ({exc}). Retrain the model.") from exc
    except OSError as exc:  # e.g. a folder of that name
        raise ModelError(f"{path} cannot be read ({exc.strerror or exc}). Retrain the model.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is corrupt (a JSON {type(data).__name__}, not an object). Retrain the model.")
    return data


def read_params(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    params = read_json(model_dir, "params.json")
    if not params:
        raise ModelError(f"{model_dir} is not a model folder (no params.json). Retrain the model.")
    if params.get("format") != FORMAT_VERSION:
        raise ModelError(
            f"{model_dir} was saved in format {params.get('format')!r}; this version "
            f"reads format {FORMAT_VERSION}. Retrain the model."
        )
    return params


def check_dataset(model_dir: str | Path, fingerprint: str) -> None:
    """Raise :class:`ModelError` when the model was trained on other data."""
    params = read_params(model_dir)
    trained = params.get("dataset", {})
    if trained.get("fingerprint") != fingerprint:
        raise ModelError(
            f"Model {Path(model_dir).name} was trained on {trained.get('name')} "
            f"(fingerprint {trained.get('fingerprint')}), not on the data now "
            f"configured (fingerprint {fingerprint}). Retrain, or point "
            "MOVIELENS_DATA at the data it was trained on."
        )
