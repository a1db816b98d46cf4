"""Load and validate MovieLens in GroupLens's layout, from a folder or a release zip.

``movies.csv`` and ``ratings.csv`` are required, ``tags.csv`` and ``links.csv``
optional. Every problem is reported as a :class:`DataError` naming the file, the
line, what is wrong and what to do. Works for ml-latest-small (the default) and
the large releases with the same columns (ml-latest, ml-25m, ml-32m).

Example:
    >>> data = load_movielens("../shared/data/ml-latest-small.zip")  # doctest: +SKIP
    >>> data.ratings.shape
    (100836, 4)
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..settings import get_settings

log = logging.getLogger(__name__)

# Column names, defined once.
USER, ITEM, RATING, TIME = "userId", "movieId", "rating", "timestamp"
TITLE, GENRES, TAG = "title", "genres", "tag"
NO_GENRES = "(no genres listed)"

REQUIRED_COLUMNS = {
    "ratings.csv": [USER, ITEM, RATING, TIME],
    "movies.csv": [ITEM, TITLE, GENRES],
    "tags.csv": [USER, ITEM, TAG, TIME],
    "links.csv": [ITEM, "imdbId", "tmdbId"],
}
OPTIONAL_FILES = ("tags.csv", "links.csv")
MIN_RATING, MAX_RATING = 0.5, 5.0
YEAR_PATTERN = r"\((\d{4})\)\s*$"  # the release year ending a title: "Heat (1995)"
_YEAR = re.compile(YEAR_PATTERN)


class DataError(ValueError):
    """MovieLens data that cannot be used; the message says where and what to do."""


@dataclass
class MovieLens:
    """One MovieLens release in memory (pandas)."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame
    links: pd.DataFrame
    source: str
    name: str
    fingerprint: str

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.ratings):,} ratings by {self.ratings[USER].nunique():,} "
            f"users on {len(self.movies):,} movies ({self.source})"
        )


class _Source:
    """Reads member files of a release folder or zip by their base name.

    A file larger than ``max_bytes`` (the ``MAX_MEMBER_MB`` setting) is refused before it is
    read: a small zip can inflate to gigabytes.
    """

    def __init__(self, location: str | Path, max_bytes: int | None = None):
        self.location = str(location)
        self.max_bytes = get_settings().max_member_bytes if max_bytes is None else max_bytes
        path = Path(location)
        if not path.exists():
            raise DataError(
                f"MovieLens data not found at {path}. Set MOVIELENS_DATA to a "
                "GroupLens folder or zip, or run `python -m engine fetch`."
            )
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, str] = {}
        if path.is_dir():
            for f in path.rglob("*.csv"):
                self.members.setdefault(f.name, str(f))
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(
                    f"{path}: not a readable zip ({exc}). The download is "
                    "truncated or corrupt: delete it and fetch it again."
                ) from exc
            for name in self.zip.namelist():
                if name.endswith(".csv"):
                    self.members.setdefault(name.rsplit("/", 1)[-1], name)
        self.name = path.stem if not path.is_dir() else path.name

    def has(self, name: str) -> bool:
        return name in self.members

    def read_bytes(self, name: str) -> bytes:
        if name not in self.members:
            raise DataError(
                f"{name} is missing from {self.location}. A GroupLens release has "
                "movies.csv and ratings.csv (plus tags.csv, links.csv)."
            )
        if self.zip is None:
            path = Path(self.members[name])
            self._check_size(name, path.stat().st_size)
            return path.read_bytes()
        info = self.zip.getinfo(self.members[name])
        self._check_size(info.filename, info.file_size)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and LZMA inflate a whole input chunk at once, however large the result
            raise DataError(
                f"{self.location}: {info.filename} is compressed with method "
                f"{info.compress_type}; only stored and deflated members (as in GroupLens's "
                "zips) are read. Re-download it (`python -m engine fetch`) or re-zip it."
            )
        try:
            with self.zip.open(info) as member:
                # zipfile inflates no more than the declared size and then checks the CRC-32,
                # so a header understating the size ends in BadZipFile, not in a bigger buffer.
                data = member.read(info.file_size)
        except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, zlib.error) as exc:
            raise DataError(
                f"{self.location}: member {info.filename} is corrupt "
                f"({type(exc).__name__}: {exc}). Delete the zip and download it again "
                "(`python -m engine fetch`)."
            ) from exc
        if len(data) != info.file_size:
            raise DataError(
                f"{self.location}: member {info.filename} is truncated ({len(data):,} of "
                f"{info.file_size:,} bytes). Delete the zip and download it again "
                "(`python -m engine fetch`)."
            )
        return data

    def _check_size(self, member: str, size: int) -> None:
        if size > self.max_bytes:
            raise DataError(
                f"{self.location}: {member} is {size / 2**20:,.0f} MiB uncompressed, over the "
                f"{self.max_bytes / 2**20:,.0f} MiB limit for one data file (MAX_MEMBER_MB). "
                "The largest MovieLens file (ml-32m's ratings.csv) is 0.8 GiB: this is not a "
                "GroupLens release, or a damaged one; download it again (`python -m engine "
                "fetch`). Raise MAX_MEMBER_MB only for a genuine file that big."
            )


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{where}, line {line}: bytes that are not UTF-8 text ({exc.reason}). Save the file as UTF-8."
        ) from exc


def _read_csv(source: _Source, name: str) -> pd.DataFrame:
    where = f"{source.location}:{name}"
    raw = source.read_bytes(name)
    try:
        _decode(raw, where)  # checks UTF-8, naming the line; pandas then reads the bytes
        if not raw or raw.isspace():
            raise DataError(
                f"{where} is empty. It needs the header {','.join(REQUIRED_COLUMNS[name])} and at least one row."
            )
        # From bytes, not a StringIO: that one would hold the text as 4 bytes per character.
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.ParserError as exc:
        raise DataError(f"{where}: cannot parse CSV ({exc}). Check quoting on that line.") from exc
    except MemoryError as exc:
        raise _out_of_memory(where, len(raw)) from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
    if missing:
        raise DataError(
            f"{where}, line 1: missing column(s) {', '.join(missing)}; the header "
            f"is {','.join(df.columns)} but must have {','.join(REQUIRED_COLUMNS[name])}."
        )
    if df.empty and name in ("ratings.csv", "movies.csv"):
        raise DataError(f"{where} has a header but no rows. Use a complete MovieLens release.")
    return df


def _to_int(df: pd.DataFrame, col: str, where: str, allow_blank: bool = False) -> pd.Series:
    values = df[col].str.strip()
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() & ~(allow_blank & (values == ""))
    bad |= num.notna() & (num != np.floor(num))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where}, line {i + 2}: {col} is {values.iloc[i]!r}, not a whole number. Fix or remove that line."
        )
    return num.astype("Int64") if allow_blank else num.astype(np.int64)


def _validate_ratings(df: pd.DataFrame, where: str) -> pd.DataFrame:
    out = pd.DataFrame({USER: _to_int(df, USER, where), ITEM: _to_int(df, ITEM, where)})
    rating = pd.to_numeric(df[RATING].str.strip(), errors="coerce")
    bad = rating.isna() | (rating < MIN_RATING) | (rating > MAX_RATING) | ((rating * 2) % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where}, line {i + 2}: rating {df[RATING].iloc[i]!r} is not on the "
            f"{MIN_RATING}-{MAX_RATING} scale in half-star steps. Fix or remove that line."
        )
    out[RATING] = rating.astype(np.float32)
    out[TIME] = _to_int(df, TIME, where)
    dup = out.duplicated([USER, ITEM], keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        users, items = out[USER].to_numpy(), out[ITEM].to_numpy()
        u, m = int(users[rows[0]]), int(items[rows[0]])
        same = rows[(users[rows] == u) & (items[rows] == m)]
        raise DataError(
            f"{where}, lines {same[0] + 2} and {same[1] + 2}: user {u} rated "
            f"movie {m} twice. Keep one rating per (userId, movieId)."
        )
    return out


def _validate_movies(df: pd.DataFrame, where: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            ITEM: _to_int(df, ITEM, where),
            TITLE: df[TITLE].str.strip(),
            GENRES: df[GENRES].str.strip().replace("", NO_GENRES),
        }
    )
    dup = out[ITEM].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{where}, line {i + 2}: movieId {out[ITEM].iloc[i]} appears twice. Each movie needs one line.")
    out["year"] = release_years(out[TITLE])
    return out


def release_years(titles: pd.Series) -> pd.Series:
    """The year ending each title ("Heat (1995)" -> 1995), missing (<NA>) where there is none."""
    return titles.str.extract(_YEAR, expand=False).astype("Int64")


def _out_of_memory(where: str, size: int | None = None) -> DataError:
    what = f" ({size / 2**20:,.0f} MiB of CSV)" if size else ""
    return DataError(
        f"{where}: not enough memory to load it{what}; loading takes several times the "
        "size of the CSV files. Use a machine with more memory or a smaller release "
        "(ml-latest-small, ml-25m)."
    )


def load_movielens(location: str | Path) -> MovieLens:
    """Read and validate a release; raises :class:`DataError` with a precise message."""
    try:
        return _load(location)
    except MemoryError as exc:
        raise _out_of_memory(str(location)) from exc


def side_tables(source: _Source, location: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """tags.csv and links.csv (empty tables when absent), each value checked; ``location`` names the files
    in messages. Shared by :func:`load_movielens` and the Parquet conversion."""
    tags = pd.DataFrame(
        {
            USER: pd.Series(dtype=np.int64),
            ITEM: pd.Series(dtype=np.int64),
            TAG: pd.Series(dtype=str),
            TIME: pd.Series(dtype=np.int64),
        }
    )
    links = pd.DataFrame(
        {ITEM: pd.Series(dtype=np.int64), "imdbId": pd.Series(dtype=str), "tmdbId": pd.Series(dtype="Int64")}
    )
    if source.has("tags.csv"):
        raw, where = _read_csv(source, "tags.csv"), f"{location}:tags.csv"
        tags = pd.DataFrame(
            {
                USER: _to_int(raw, USER, where),
                ITEM: _to_int(raw, ITEM, where),
                TAG: raw[TAG].str.strip(),
                TIME: _to_int(raw, TIME, where),
            }
        )
    if source.has("links.csv"):
        raw, where = _read_csv(source, "links.csv"), f"{location}:links.csv"
        links = pd.DataFrame(
            {
                ITEM: _to_int(raw, ITEM, where),
                "imdbId": raw["imdbId"].str.strip(),
                "tmdbId": _to_int(raw, "tmdbId", where, allow_blank=True),
            }
        )
    return tags, links


def _load(location: str | Path) -> MovieLens:
    source = _Source(location)
    ratings = _validate_ratings(_read_csv(source, "ratings.csv"), f"{location}:ratings.csv")
    movies = _validate_movies(_read_csv(source, "movies.csv"), f"{location}:movies.csv")
    tags, links = side_tables(source, location)
    unknown = ~ratings[ITEM].isin(movies[ITEM])
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(
            f"{location}:ratings.csv, line {i + 2}: movieId {ratings[ITEM].iloc[i]} "
            "is not in movies.csv. Add the movie or remove the rating."
        )
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(ratings[[USER, ITEM, RATING]], index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(movies[[ITEM, TITLE]], index=False).to_numpy().tobytes())
    data = MovieLens(ratings, movies, tags, links, str(location), source.name, h.hexdigest()[:16])
    log.info("loaded %s", data.describe())
    return data


def explode_genres(movies: pd.DataFrame) -> pd.DataFrame:
    """One row per (movieId, genre); '(no genres listed)' kept as its own label."""
    g = movies[[ITEM, GENRES]].copy()
    g[GENRES] = g[GENRES].str.split("|")
    return g.explode(GENRES).rename(columns={GENRES: "genre"}).reset_index(drop=True)


# MovieLens files an English or foreign leading article at the end of each title part:
# "Matrix, The (1999)", "Boot, Das (Boat, The) (1981)", "School of Flesh, The (École de la chair, L')".
ARTICLES = (
    "The",
    "A",
    "An",
    "La",
    "Le",
    "Les",
    "L'",
    "Il",
    "I",
    "El",
    "Lo",
    "Los",
    "Las",
    "Der",
    "Die",
    "Das",
    "De",
    "Det",
    "En",
    "Un",
    "Une",
    "Una",
    "Da",
)
_TRAILING_ARTICLE = re.compile(r"(^|\()([^()]+?), (" + "|".join(map(re.escape, ARTICLES)) + r")(?=\)|\s\(|$)")
_TRAILING_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def _article_first(match: re.Match) -> str:
    opening, rest, article = match.groups()
    return f"{opening}{article}{'' if article.endswith(chr(39)) else ' '}{rest}"


def readable_title(title, with_year: bool = True) -> str:
    """A title as people write it: "Matrix, The (1999)" -> "The Matrix (1999)".

    Every part (the title and each alternative title in brackets) gets its article back in
    front; other commas stay ("Paris, Texas", "I, Robot"). ``with_year=False`` drops a
    trailing "(1999)" where the year is shown beside the title anyway.
    """
    text = "" if title is None else str(title).strip()
    if not with_year:
        text = _TRAILING_YEAR.sub("", text)
    return _TRAILING_ARTICLE.sub(_article_first, text)


def fold_for_search(text) -> str:
    """Lower case, accents dropped ("Amélie" -> "amelie"): how titles and queries are compared."""
    import unicodedata

    text = str(text)
    if text.isascii():  # nothing to decompose or drop: the same result, 20x faster (87 k titles at load)
        return text.casefold()
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def title_search_key(title, readable: str | None = None) -> str:
    """What a title search matches: the stored and the readable title (``readable``, when already
    made), folded, so "the godfather", "godfather, the" and "amelie" all find theirs."""
    return fold_for_search(f"{title}\n{readable if readable is not None else readable_title(title)}")
