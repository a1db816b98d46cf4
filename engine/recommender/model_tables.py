"""A saved model's tables read back for serving, each checked against what serving needs.

Columns, types, ids without repeats, finite factors of one rank: a wrong table would otherwise be a
``KeyError`` deep in serving or, with NaN factors, a silently meaningless ranking. Every problem is a
:class:`~engine.recommender.model_store.ModelError` naming the file and what to do. The folder's
layout, saving and the ``CURRENT`` pointer are in :mod:`engine.recommender.model_store`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .ease import WEIGHTS as EASE_WEIGHTS
from .ease import EaseConfig
from .model_store import BLEND_TABLES, EASE_TABLES, PICK_TABLES, TABLES, ModelError, read_params
from .neighbours import BLEND_WEIGHTS

#: The columns serving reads from each table, and what they must hold (besides f0..f{k-1}
#: factor columns in the factor tables): "id" integers without repeats, "int" integers,
#: "finite" numbers without NaN/inf, "count" finite numbers >= 0, "number" numbers (NaN
#: allowed: a movie without a year), "text" strings, "any" present.
SCHEMAS = {
    "user_factors": {"userId": "id", "user_bias": "finite"},
    "item_factors": {"movieId": "id", "item_bias": "finite", "n_ratings": "count"},
    "movies": {
        "movieId": "id",
        "title": "text",
        "genres": "text",
        "year": "number",
        "imdbId": "any",
        "tmdbId": "number",
        "total_ratings": "count",
        "mean_rating": "number",
    },
    "ratings": {"userId": "int", "movieId": "int", "rating": "finite"},
    "pick_user_factors": {"userId": "id"},
    "pick_item_factors": {"movieId": "id"},
    "neighbours": {"movieId": "int", "neighbourId": "int", "similarity": "finite"},
    "ease_gram": {"movieId": "int", "otherId": "int", "value": "finite"},
}
FACTOR_TABLES = ("user_factors", "item_factors", *PICK_TABLES)


def _broken(path: Path, problem: str) -> ModelError:
    return ModelError(
        f"{path} {problem}: this model cannot be served. Retrain it, or make another saved "
        "model current (`python -m engine models --use NAME`, or Saved models on the app's "
        "Model page)."
    )


def _column_problem(col: pd.Series, kind: str) -> str | None:
    """What is wrong with a column for its ``kind`` of :data:`SCHEMAS` (None: nothing)."""
    types = pd.api.types
    if kind in ("id", "int"):
        if not types.is_integer_dtype(col):
            return f"holds {col.dtype}, not integers"
        if kind == "id" and col.duplicated().any():
            return f"repeats the id {col[col.duplicated()].iloc[0]}"
    elif kind in ("finite", "count", "number"):
        if not types.is_numeric_dtype(col) or types.is_bool_dtype(col):
            return f"holds {col.dtype}, not numbers"
        # floats as they are (32 M float32 ratings: no float64 copy), others as float64 (NaN for nulls)
        values = col.to_numpy() if types.is_float_dtype(col) else col.to_numpy(np.float64, na_value=np.nan)
        if kind != "number" and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            return f"has {bad:,} value(s) that are NaN or infinite"
        if kind == "count" and (values < 0).any():
            return "has negative counts"
    elif kind == "text" and not types.is_string_dtype(col):
        return f"holds {col.dtype}, not text"
    return None


def _factor_columns(path: Path, frame: pd.DataFrame) -> list[str]:
    """The factor columns f0..f{k-1}, checked: all there, in order, numeric and finite."""
    fcols = [c for c in frame.columns if isinstance(c, str) and c.startswith("f") and c[1:].isdigit()]
    expected = [f"f{i}" for i in range(len(fcols))]
    if not fcols or sorted(fcols, key=lambda c: int(c[1:])) != expected:
        raise _broken(path, f"lacks the factor columns f0..f{{rank-1}} (it has {', '.join(map(str, frame.columns))})")
    values = frame[fcols]
    if not all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in values.dtypes):
        raise _broken(path, "has factor columns that are not numbers")
    floats = all(pd.api.types.is_float_dtype(t) for t in values.dtypes)  # Spark's float32: checked as they are
    finite = np.isfinite(values.to_numpy() if floats else values.to_numpy(np.float64, na_value=np.nan))
    if not finite.all():
        raise _broken(path, f"has {int((~finite).any(axis=1).sum()):,} row(s) whose factors are NaN or infinite")
    return fcols


def check_tables(model_dir: Path, params: dict, frames: dict[str, pd.DataFrame]) -> None:
    """:class:`ModelError` naming the file unless every table has the columns, types, ids and
    finite factors serving needs: a wrong table would otherwise be a ``KeyError`` deep in
    serving, or (NaN factors) a silently meaningless ranking."""
    ranks = {}
    for table, frame in frames.items():
        path = model_dir / f"{table}.parquet"
        missing = [c for c in SCHEMAS[table] if c not in frame.columns]
        if missing:
            raise _broken(
                path,
                f"lacks the column(s) {', '.join(missing)} (it has {', '.join(map(str, frame.columns)) or 'none'})",
            )
        for column, kind in SCHEMAS[table].items():
            if problem := _column_problem(frame[column], kind):
                raise _broken(path, f"is damaged: column {column} {problem}")
        if table in FACTOR_TABLES:
            if frame.empty:
                raise _broken(path, "has no rows")
            ranks[table] = len(_factor_columns(path, frame))
    rank = params.get("rank")
    if (rank is not None and ranks["user_factors"] != rank) or ranks["item_factors"] != ranks["user_factors"]:
        raise _broken(
            model_dir / "item_factors.parquet",
            f"has {ranks['item_factors']} factors per movie, user_factors.parquet "
            f"{ranks['user_factors']}, params.json rank {rank}; they must agree",
        )
    if "pick_user_factors" in ranks and ranks["pick_user_factors"] != ranks["pick_item_factors"]:
        raise _broken(
            model_dir / "pick_item_factors.parquet",
            f"has {ranks['pick_item_factors']} factors per movie, pick_user_factors.parquet "
            f"{ranks['pick_user_factors']}; they must agree",
        )


def _finite_param(model_dir: Path, params: dict, *keys: str) -> float:
    value = params
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ModelError(f"{model_dir / 'params.json'} lacks {'.'.join(keys)!r}. Retrain the model.")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _broken(model_dir / "params.json", f"has {'.'.join(keys)} = {value!r}, not a finite number")
    return float(value)


def _column_frame(table: pa.Table) -> pd.DataFrame:
    """A frame whose columns are the table's columns as numpy arrays, one block each (no
    consolidation copy). For 32 M ratings ``to_pandas`` took 1.4-4 s on a fresh process, this 0.1-0.8 s.
    A column with nulls comes as floats with NaN (or objects), as ``to_pandas`` gives it, so the
    checks name it the same way."""
    columns = {}
    for name in table.column_names:
        columns[name] = table.column(name).to_numpy()
        table = table.drop_columns([name])  # that column's Arrow buffers can go now
    return pd.DataFrame(columns, copy=False)


def read_serving_tables(model_dir: str | Path, with_ratings: bool = True) -> dict:
    """What :meth:`engine.recommender.serving.RecommenderIndex.from_frames` needs, checked (:func:`check_tables`).

    ``with_ratings=False`` skips the ratings table (32 M rows at ml-32m), for readers of the
    factors and catalogue only (Spark LSH); the result then has no ``ratings``."""
    model_dir = Path(model_dir)
    params = read_params(model_dir)
    frames = {}
    # Top-picks tables are optional (older models lack them), but never half there.
    has_picks = "picks" in params or any((model_dir / f"{t}.parquet").exists() for t in PICK_TABLES)
    tables = TABLES if with_ratings else tuple(t for t in TABLES if t != "ratings")
    # The blend of the predicted stars (models from 2026-12-03 on) needs its neighbours and the top picks.
    has_blend = with_ratings and "blend" in params
    if has_blend and not has_picks:
        raise _broken(model_dir / "params.json", "has a blend of the predicted stars but no top-picks model")
    # Top picks' EASE (models from 2026-12-03's EASE on) needs its Gram and the top picks.
    has_ease = with_ratings and isinstance(params.get("ease"), dict) and params["ease"].get("share") != 0
    if has_ease and not has_picks:
        raise _broken(model_dir / "params.json", "has EASE for top picks but no top-picks model")
    optional = (
        (PICK_TABLES if has_picks else ()) + (BLEND_TABLES if has_blend else ()) + (EASE_TABLES if has_ease else ())
    )
    for table in tables + optional:
        path = model_dir / f"{table}.parquet"
        if not path.exists():
            raise ModelError(f"{model_dir} is incomplete: {path.name} is missing. Retrain the model.")
        try:
            if table == "ratings":  # tens of millions of rows: _column_frame, not to_pandas
                frames[table] = _column_frame(pq.read_table(path))
            else:
                frames[table] = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise ModelError(f"{path} is corrupt ({type(exc).__name__}: {exc}). Retrain the model.") from exc
    check_tables(model_dir, params, frames)
    out = {
        "mu": _finite_param(model_dir, params, "mu"),
        "reg_param": _finite_param(model_dir, params, "reg_param"),
        "user_bias_reg": _finite_param(model_dir, params, "user_bias_reg"),
        "user_frame": frames["user_factors"],
        "item_frame": frames["item_factors"],
        "movies": frames["movies"],
    }
    if with_ratings:
        out["ratings"] = frames["ratings"]
    if has_blend:
        blend = params["blend"]
        if not isinstance(blend, dict):
            raise _broken(model_dir / "params.json", f"has blend = {blend!r}, not its weights")
        out["neighbour_frame"] = frames["neighbours"]
        out["blend_params"] = {k: _finite_param(model_dir, params, "blend", k) for k in BLEND_WEIGHTS}
    if has_ease:
        out["ease_frame"] = frames["ease_gram"]
        out["ease_params"] = _ease_params(model_dir, params)
    if has_picks:
        out.update(
            pick_user_frame=frames["pick_user_factors"],
            pick_item_frame=frames["pick_item_factors"],
            pick_params={
                "alpha": _finite_param(model_dir, params, "picks", "alpha"),
                "reg_param": _finite_param(model_dir, params, "picks", "reg_param"),
                # models saved before 2026-12-03 took every rating as liked: neutral 0
                "neutral": _finite_param(model_dir, params, "picks", "neutral")
                if "neutral" in params.get("picks", {})
                else 0.0,
            },
        )
    return out


def _ease_params(model_dir: Path, params: dict) -> dict:
    """params.json's ``ease``, checked (:meth:`~engine.recommender.ease.EaseConfig.check`)."""
    values = {k: _finite_param(model_dir, params, "ease", k) for k in EASE_WEIGHTS}
    for name in ("min_ratings", "max_movies"):
        value = params["ease"].get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _broken(model_dir / "params.json", f"has ease {name} = {value!r}, not a whole number")
        values[name] = value
    try:
        EaseConfig(**values).check()
    except ValueError as exc:
        raise _broken(model_dir / "params.json", f"has settings EASE cannot use ({exc})") from None
    return values
