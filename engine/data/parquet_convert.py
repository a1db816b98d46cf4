"""The conversion behind :func:`~engine.data.prepare.prepare_release`: a MovieLens release's CSV files
read once (checked with :func:`~engine.data.movielens.load_movielens`'s rules and messages) and written
as typed Parquet plus the small per-year summaries the statistics count slices from.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import (
    GENRES,
    ITEM,
    RATING,
    TAG,
    TIME,
    TITLE,
    USER,
    DataError,
    _read_csv,
    _Source,
    _validate_movies,
    load_movielens,
    side_tables,
)

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the folder's layout changes: older folders are not reused (2: user_cells.npz)
STARS = np.arange(1, 11) / 2  # 0.5 .. 5.0: columns r1 .. r10 of movie_years
_INT32_MAX = np.iinfo(np.int32).max
RATINGS_HEADER = [USER, ITEM, RATING, TIME]


def convert(location: str, out: Path, say) -> dict:
    source = _Source(location)
    where = f"{location}:movies.csv"
    movies = _validate_movies(_read_csv(source, "movies.csv"), where)
    ratings, fingerprint_part = _fast_ratings(source, out, movies, say)
    if ratings is None:  # the typed reader refused the file: the pandas checks say where and why
        say("ratings.csv needs the line-by-line checks (slower)…")
        data = load_movielens(location)
        ratings = _checked_ids(data.ratings, f"{location}:ratings.csv")
        fingerprint, tags, links = data.fingerprint, data.tags, data.links
    else:
        h = hashlib.sha256(fingerprint_part)
        h.update(pd.util.hash_pandas_object(movies[[ITEM, TITLE]], index=False).to_numpy().tobytes())
        fingerprint = h.hexdigest()[:16]
        tags, links = side_tables(source, location)
    say("writing Parquet…")
    _write(ratings, movies, tags, links, out)
    return {
        "format": FORMAT,
        "source": str(location),
        "name": source.name,
        "fingerprint": fingerprint,
        "ratings": int(len(ratings)),
        "users": int(ratings[USER].nunique()),
        "movies": int(len(movies)),
        "tags": int(len(tags)),
    }


def _fast_ratings(source: _Source, out: Path, movies: pd.DataFrame, say):
    """ratings.csv read by DuckDB's typed CSV reader and checked on the typed columns.

    Returns (ratings frame in file order, the ratings' part of the fingerprint), or (None, b"")
    when the file is not plainly in GroupLens's form (another header order, spaces, a value
    that is not a number...): the caller then runs the pandas checks, which name the line.
    A value the typed reader parsed but that breaks a rule is named here, with its line.
    """
    import duckdb

    where = f"{source.location}:ratings.csv"
    member = source.members.get("ratings.csv")
    if member is None:
        source.read_bytes("ratings.csv")  # raises the "missing" message
    if source.zip is None:
        csv_path = Path(member)
        source._check_size("ratings.csv", csv_path.stat().st_size)
    else:
        info = source.zip.getinfo(member)
        source._check_size(info.filename, info.file_size)
        csv_path = out / "ratings.csv"
        say("unpacking ratings.csv…")
        try:
            with source.zip.open(info) as src, open(csv_path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{source.location}: member {info.filename} is corrupt ({type(exc).__name__}: {exc}). "
                "Delete the zip and download it again (`python -m engine fetch`)."
            ) from exc
    with open(csv_path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").strip().lstrip("\ufeff")
    if [c for c in header.split(",")] != RATINGS_HEADER:
        return None, b""
    say("reading ratings.csv…")
    con = duckdb.connect()
    try:
        table = con.execute(
            "SELECT * FROM read_csv(?, header=true, delim=',', quote='\"', escape='\"', auto_detect=false, "
            "strict_mode=true, columns={'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', "
            "'timestamp': 'BIGINT'})",
            [str(csv_path)],
        ).fetchnumpy()
    except duckdb.Error as exc:
        log.info("typed read of %s refused (%s): checking line by line", where, exc)
        return None, b""
    finally:
        con.close()
        if source.zip is not None:
            csv_path.unlink(missing_ok=True)
    cols = {c: np.asarray(table[c]) for c in RATINGS_HEADER}
    if any(np.ma.isMaskedArray(table[c]) and np.ma.getmaskarray(table[c]).any() for c in RATINGS_HEADER):
        return None, b""  # an empty field: the pandas checks name it
    user, item, rating, ts = (cols[c] for c in RATINGS_HEADER)
    if not len(user):
        raise DataError(f"{where} has a header but no rows. Use a complete MovieLens release.")
    bad = ~((rating >= STARS[0]) & (rating <= STARS[-1]) & (rating * 2 == np.floor(rating * 2)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}, line {i + 2}: rating {rating[i]:g} is not on the {STARS[0]}-{STARS[-1]} "
            "scale in half-star steps. Fix or remove that line."
        )
    frame = pd.DataFrame(
        {
            USER: user.astype(np.int64),
            ITEM: item.astype(np.int64),
            RATING: rating.astype(np.float32),
            TIME: ts.astype(np.int64),
        }
    )
    frame = _checked_ids(frame, where)
    _check_duplicates(frame, where)
    known = np.isin(item, movies[ITEM].to_numpy())
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise DataError(
            f"{where}, line {i + 2}: movieId {item[i]} is not in movies.csv. Add the movie or remove the rating."
        )
    part = pd.util.hash_pandas_object(frame[[USER, ITEM, RATING]], index=False).to_numpy().tobytes()
    return frame, part


def _checked_ids(ratings: pd.DataFrame, where: str) -> pd.DataFrame:
    """Ids stored as int32 (as Spark's ALS needs them): one too large is named with its line."""
    for col in (USER, ITEM):
        values = ratings[col].to_numpy()
        big = (values > _INT32_MAX) | (values < 0)
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{where}, line {i + 2}: {col} {values[i]} is outside 0..{_INT32_MAX:,} (ids are "
                "stored as 32-bit integers). Renumber the ids."
            )
    return ratings


def _check_duplicates(ratings: pd.DataFrame, where: str) -> None:
    """load_movielens's rule (one rating per user and movie), with the same message, on sorted keys."""
    key = (ratings[USER].to_numpy() << 32) | ratings[ITEM].to_numpy()
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if same.any():
        first = int(np.flatnonzero(same)[0])
        k = key[order][first]
        rows = np.sort(order[key[order] == k])
        u, m = int(k >> 32), int(k & 0xFFFFFFFF)
        raise DataError(
            f"{where}, lines {rows[0] + 2} and {rows[1] + 2}: user {u} rated movie {m} twice. "
            "Keep one rating per (userId, movieId)."
        )


def _utc_year(seconds: np.ndarray) -> np.ndarray:
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def _write(ratings: pd.DataFrame, movies: pd.DataFrame, tags: pd.DataFrame, links: pd.DataFrame, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    user, item = ratings[USER].to_numpy(), ratings[ITEM].to_numpy()
    order = np.lexsort((item, user))  # by user, then movie: one user's ratings together
    rating = ratings[RATING].to_numpy(np.float32)
    ts = ratings[TIME].to_numpy(np.int64)
    pq.write_table(
        pa.table(
            {
                USER: user[order].astype(np.int32),
                ITEM: item[order].astype(np.int32),
                RATING: rating[order],
                TIME: ts[order],
            }
        ),
        out / "ratings.parquet",
        row_group_size=1 << 20,
    )
    pq.write_table(
        pa.table(
            {
                ITEM: movies[ITEM].to_numpy(np.int32),
                TITLE: movies[TITLE].astype(str),
                GENRES: movies[GENRES].astype(str),
                "year": pa.array(movies["year"].astype("Int32"), type=pa.int32(), from_pandas=True),
            }
        ),
        out / "movies.parquet",
    )
    pq.write_table(
        pa.table(
            {
                USER: tags[USER].to_numpy(np.int64).astype(np.int32),
                ITEM: tags[ITEM].to_numpy(np.int64).astype(np.int32),
                TAG: tags[TAG].astype(str),
                TIME: tags[TIME].to_numpy(np.int64),
                "tag_folded": tags[TAG].astype(str).str.lower(),
            }
        ),
        out / "tags.parquet",
    )
    pq.write_table(
        pa.table(
            {
                ITEM: links[ITEM].to_numpy(np.int64).astype(np.int32),
                "imdbId": links["imdbId"].astype(str),
                "tmdbId": pa.array(links["tmdbId"], type=pa.int64(), from_pandas=True),
            }
        ),
        out / "links.parquet",
    )
    # Summaries: every slice (movies by genre and release year, ratings by year given) is a
    # filter on their keys, so the statistics add up at most a few million of their rows.
    years = _utc_year(ts)
    y0 = int(years.min())
    yi = (years - y0).astype(np.int64)
    n_years = int(yi.max()) + 1
    ids, mi = np.unique(item, return_inverse=True)
    star = np.rint(rating.astype(np.float64) * 2).astype(np.int64) - 1
    cube = np.bincount((mi * n_years + yi) * 10 + star, minlength=len(ids) * n_years * 10)
    cube = cube.reshape(len(ids) * n_years, 10)
    keep = np.flatnonzero(cube.sum(axis=1))
    pq.write_table(
        pa.table(
            {
                ITEM: ids[keep // n_years].astype(np.int32),
                "year": (keep % n_years + y0).astype(np.int16),
                **{f"r{k + 1}": cube[keep, k].astype(np.int32) for k in range(10)},
            }
        ),
        out / "movie_years.parquet",
    )
    uids, ui = np.unique(user, return_inverse=True)
    per = np.bincount(ui * n_years + yi, minlength=len(uids) * n_years)
    keep = np.flatnonzero(per)
    pq.write_table(
        pa.table(
            {
                USER: uids[keep // n_years].astype(np.int32),
                "year": (keep % n_years + y0).astype(np.int16),
                "n": per[keep].astype(np.int32),
            }
        ),
        out / "user_years.parquet",
    )
    # Per rating, in ratings.parquet's order (by user): the movie's row in movies.parquet and the year
    # rated. A slice that narrows movies counts each user's ratings from these (~3 bytes a rating),
    # read in well under a second; decoding them from ratings.parquet took 2.6 s at 25 M.
    movie_ids = movies[ITEM].to_numpy(np.int64)
    by_id = np.argsort(movie_ids, kind="stable")  # ids up to 2^31: a search, not a table as long as the largest id
    movie_row = by_id[np.searchsorted(movie_ids[by_id], item[order])]
    year_of = yi[order]
    sorted_users = user[order]
    np.savez(
        out / "user_cells.npz",
        movie=movie_row.astype(np.uint16 if len(movies) <= 1 << 16 else np.int32),
        year=year_of.astype(np.uint8 if n_years <= 256 else np.int16),
        first_year=np.int64(y0),
        starts=np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]]),
    )
