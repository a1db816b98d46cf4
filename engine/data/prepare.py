"""Convert a MovieLens release once to typed Parquet, cached by the release, for Spark and DuckDB.

``python -m engine prepare-data`` (also run by ``make run`` when missing) reads the
configured release (``MOVIELENS_DATA``: a GroupLens folder or zip), checks it with the
same rules and messages as :func:`~engine.data.movielens.load_movielens`, and writes::

    <data_dir>/parquet/<release>-<key>/
        manifest.json      source, name, content fingerprint (as load_movielens gives), counts
        ratings.parquet    userId int32, movieId int32, rating float32, timestamp int64; sorted by userId
        movies.parquet     movieId int32, title, genres, year (from the title; null: none)
        tags.parquet       userId, movieId, tag, timestamp, tag_folded (lower case, as the statistics count)
        links.parquet      movieId, imdbId, tmdbId
        movie_years.parquet  movieId, year rated (UTC), r1..r10: ratings of 0.5..5.0 stars
        user_years.parquet   userId, year rated (UTC), n: ratings
        user_cells.npz     per rating in ratings.parquet's order: movie's row in movies.parquet, year
                           rated (offset from first_year); starts: each user's first rating

The last three are compact summaries from which every slice of the statistics page is
counted without touching the 25 M rows (see :mod:`engine.data.stats_columnar`). ``<key>`` is
cheap to compute (names, sizes and modification times of the release's files), so a
second run finds the folder at once; the folder is built under a temporary name and
renamed, so a reader never sees half of it.

Example:
    >>> folder = prepare_release(get_settings())   # doctest: +SKIP
    >>> parquet_release(get_settings()) == folder   # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd

from ..settings import Settings
from .movielens import (
    GENRES,
    ITEM,
    RATING,
    TAG,
    TIME,
    TITLE,
    USER,
    DataError,
    MovieLens,
    _Source,
)
from .parquet_convert import FORMAT, convert

log = logging.getLogger(__name__)


def release_key(location: str | Path) -> str:
    """A cheap key of a local release: names, sizes and modification times of its CSV files (or zip)."""
    path = Path(location)
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    h = hashlib.sha256(f"format {FORMAT}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def parquet_folder(settings: Settings) -> Path | None:
    """Where the Parquet of the configured release is (or would be); None for a URI or a missing release."""
    location = settings.movielens_data
    if "://" in location or not Path(location).exists():
        return None
    path = Path(location)
    name = path.name if path.is_dir() else path.stem
    return settings.data_dir / "parquet" / f"{name}-{release_key(path)}"


def release_bytes(location: str | Path) -> int:
    """The uncompressed size of a local release's CSV files (0 for a URI or a missing path)."""
    path = Path(location)
    if "://" in str(location) or not path.exists():
        return 0
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*.csv"))
    try:
        with zipfile.ZipFile(path) as z:
            return sum(i.file_size for i in z.infolist() if i.filename.endswith(".csv"))
    except (zipfile.BadZipFile, OSError):
        return 0  # the loaders say what is wrong with it


def parquet_release(settings: Settings) -> Path | None:
    """The prepared Parquet folder of the configured release, or None when it is not prepared (yet).

    Spark reads it with :func:`read_spark_parquet`; the statistics with
    :class:`engine.data.stats_columnar.ColumnarRelease`.
    """
    folder = parquet_folder(settings)
    return folder if folder is not None and (folder / "manifest.json").exists() else None


def read_manifest(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


def read_spark_parquet(spark, folder: str | Path):
    """(ratings, movies, tags) Spark DataFrames of a prepared folder, with the columns of the CSV path
    (:func:`engine.data.stats_spark.read_spark_tables`): ratings userId, movieId, rating, timestamp; movies
    movieId, title, genres; tags userId, movieId, tag, timestamp."""
    base = str(folder).rstrip("/")
    if "://" not in base:
        base = Path(base).resolve().as_uri()
    ratings = spark.read.parquet(f"{base}/ratings.parquet").select(USER, ITEM, RATING, TIME)
    movies = spark.read.parquet(f"{base}/movies.parquet").select(ITEM, TITLE, GENRES)
    tags = spark.read.parquet(f"{base}/tags.parquet").select(USER, ITEM, TAG, TIME)
    return ratings, movies, tags


def prepare_release(settings: Settings, progress=None) -> Path:
    """Convert the configured release to Parquet unless already done; returns the folder.

    Raises :class:`~engine.data.movielens.DataError` (file, line, what to do) for bad data, as
    :func:`~engine.data.movielens.load_movielens` does.
    """
    say = progress or (lambda message: log.info("%s", message))
    location = settings.movielens_data
    folder = parquet_folder(settings)
    if folder is None:
        if "://" in location:
            raise DataError(
                f"{location}: prepare-data converts a local GroupLens folder or zip. Spark reads "
                "this URI directly; to convert it, copy the release to this machine first."
            )
        _Source(location)  # raises the usual "not found" message
    if (folder / "manifest.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        manifest = convert(location, work, say)
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
        work.chmod(0o755)  # mkdtemp makes it private; the app may run as another user
        try:
            os.rename(work, folder)
        except OSError:
            if not (folder / "manifest.json").exists():  # not another process's finished copy: a real error
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"prepared {folder} in {time.perf_counter() - started:.1f} s")
    return folder


def load_prepared(folder: str | Path) -> MovieLens:
    """A prepared folder as a pandas :class:`~engine.data.movielens.MovieLens` (for tests and small releases)."""
    folder = Path(folder)
    m = read_manifest(folder)
    ratings = pd.read_parquet(folder / "ratings.parquet")
    movies = pd.read_parquet(folder / "movies.parquet")
    tags = pd.read_parquet(folder / "tags.parquet").drop(columns="tag_folded")
    links = pd.read_parquet(folder / "links.parquet")
    return MovieLens(ratings, movies.astype({"year": "Int64"}), tags, links, m["source"], m["name"], m["fingerprint"])


__all__ = [
    "load_prepared",
    "parquet_folder",
    "parquet_release",
    "prepare_release",
    "read_manifest",
    "read_spark_parquet",
    "release_bytes",
    "release_key",
]
