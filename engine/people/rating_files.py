"""Ratings files people bring along, and the file the app gives back.

Three layouts are read, told apart by their header row:

* ``movieId,rating`` — this app's own export and MovieLens's ``ratings.csv`` (other
  columns are ignored; without a header, the first two columns are movieId,rating);
* IMDb's ratings export (``Const,Your Rating,...``): ``tt0111161`` and a 1-10 score,
  matched through MovieLens's ``links.csv`` and halved onto the 0.5-5 star scale;
* Letterboxd's ``ratings.csv`` (``Date,Name,Year,Letterboxd URI,Rating``): matched by
  title and year, as people write titles ("The Matrix", "Amélie"); a year one off is
  accepted when it names a single movie.

A malformed line stops the whole import with its file name, line number and what to
fix; a well-formed line naming a movie the catalogue does not have is reported in
``unmatched`` and skipped (IMDb exports hold TV series, for instance).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from ..data.movielens import ITEM, MAX_RATING, MIN_RATING, TITLE, fold_for_search, readable_title

MOVIELENS, IMDB, LETTERBOXD = "movieId,rating", "IMDb ratings export", "Letterboxd ratings export"
EXPORT_COLUMNS = ["movieId", "imdbId", "title", "year", "rating"]
MAX_BYTES = 20 * 2**20
_ALTERNATIVE = re.compile(r"^(.*?)\s*\((.+)\)$")  # "Amelie (Le Fabuleux destin d'Amélie Poulain)"


class RatingsFileError(ValueError):
    """A ratings file that cannot be read; the message names the file and line."""


@dataclass
class ImportedRatings:
    layout: str  # MOVIELENS, IMDB or LETTERBOXD
    pairs: list[tuple[int, float]]  # (movieId, rating), file order, one per movie
    unmatched: list[str] = field(default_factory=list)  # "line 7: Breaking Bad (2008)", skipped
    repeated: int = 0  # lines naming a movie an earlier line named

    def summary(self) -> str:
        text = f"{len(self.pairs):,} rating(s) read ({self.layout} file)"
        if self.repeated:
            text += f"; {self.repeated} repeated movie(s): the last line counts"
        if self.unmatched:
            shown = "; ".join(self.unmatched[:5]) + (
                f"; and {len(self.unmatched) - 5} more" if len(self.unmatched) > 5 else ""
            )
            text += f"; {len(self.unmatched)} skipped, not matched to one movie of this model's catalogue ({shown})"
        return text


def _text(data: bytes | str, name: str) -> str:
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_BYTES:
        raise RatingsFileError(
            f"{name}: {size / 2**20:.1f} MiB is too big for a ratings file (the limit is "
            f"{MAX_BYTES // 2**20} MiB; an export of 10,000 ratings is under 1 MiB). "
            "Is it the right file?"
        )
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RatingsFileError(
            f"{name}: not a UTF-8 text file (byte {exc.start} cannot be read). "
            "Export your ratings as CSV and try again."
        ) from None


_INT64 = 2**63 - 1


def parse_whole(text: str, what: str) -> int:
    """ASCII digits, optionally signed, that fit in 64 bits (ids are int64), as an int.

    ``int()`` alone accepts "٣" and fails on "²" or 5,000 digits in Python's words; the
    ``ValueError`` here names ``what`` (e.g. "the movieId") and the rule instead.
    """
    digits = text.strip().removeprefix("-")
    shown = text if len(text) <= 30 else f"{text[:20]}... ({len(text):,} characters)"
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{what} {shown!r} is not a whole number (digits 0-9).")
    if len(digits.lstrip("0")) > 19 or int(digits) > _INT64:
        raise ValueError(f"{what} {shown!r} is too large (at most {_INT64:,}).")
    return int(text)


def _positive_id(text: str, what: str, where: str) -> int:
    """A movie id of a file's line: a whole number >= 1 that fits in 64 bits."""
    try:
        value = parse_whole(text, what)
    except ValueError as exc:
        raise RatingsFileError(f"{where}: {exc} Fix or delete that line and import again.") from None
    if value < 1:
        raise RatingsFileError(
            f"{where}: {what} {text!r} is not a positive whole number. Fix or delete that line and import again."
        )
    return value


def _stars(value: str, where: str, scale: float = 1.0) -> float:
    """A rating cell on the 0.5-5 star scale (``scale`` 2 for IMDb's 1-10)."""
    try:
        stars = float(value) / scale
    except ValueError:
        raise RatingsFileError(f"{where}: the rating {value!r} is not a number.") from None
    if not MIN_RATING <= stars <= MAX_RATING or (stars * 2) % 1:
        low, high = MIN_RATING * scale, MAX_RATING * scale
        step = "whole points" if scale == 2 else "half stars"
        raise RatingsFileError(f"{where}: the rating {value!r} is off the scale: use {low:g}-{high:g} in {step}.")
    return stars


def _name_key(text: str) -> str:
    """A title as compared across sites: folded, punctuation and spacing ignored ("Schindler’s List")."""
    return " ".join(re.sub(r"[^\w]+", " ", fold_for_search(text)).split())


def _title_keys(movies: pd.DataFrame) -> dict[tuple[str, int], set[int]]:
    """(title key, year) -> movie ids; each movie under its whole, main and alternative titles."""
    keys: dict[tuple[str, int], set[int]] = defaultdict(set)
    for movie_id, title, year in zip(movies[ITEM], movies[TITLE], movies["year"]):
        if pd.isna(year):
            continue
        readable = readable_title(title, with_year=False)
        names = {readable}
        if match := _ALTERNATIVE.match(readable):  # "Seven (a.k.a. Se7en)", "Amelie (Le Fabuleux ...)"
            names |= {match.group(1), match.group(2).removeprefix("a.k.a. ")}
        for form in names:
            keys[(_name_key(form), int(year))].add(int(movie_id))
    return keys


def _title_matches(keys: dict, title: str, year: int) -> set[int]:
    """The movies of that title and year or, when there is none, of that title a year off."""
    name = _name_key(title)
    return keys.get((name, year)) or keys.get((name, year - 1), set()) | keys.get((name, year + 1), set())


def read_ratings_file(data: bytes | str, name: str, movies: pd.DataFrame) -> ImportedRatings:
    """The ratings in ``data`` (a file's bytes or text) as (movieId, rating) pairs of ``movies``.

    ``movies`` needs ``movieId``, ``title``, ``year`` and ``imdbId`` (a serving index's
    ``movies``); ``name`` is how messages call the file.
    """
    rows = [(line, row) for line, row in _rows(_text(data, name), name) if any(c.strip() for c in row)]
    if not rows:
        raise RatingsFileError(f"{name}: the file has no ratings in it.")
    header = [c.strip().lower() for c in rows[0][1]]
    column = {c: i for i, c in reversed(list(enumerate(header)))}  # the first column of each name
    if {"const", "your rating"} <= set(column):
        layout, body, needed = IMDB, rows[1:], ("const", "your rating")
        by_imdb = {
            int(i): int(m) for m, i in zip(movies[ITEM], movies["imdbId"]) if isinstance(i, str) and i.strip().isdigit()
        }
    elif {"name", "year", "rating"} <= set(column):
        layout, body, needed = LETTERBOXD, rows[1:], ("name", "year", "rating")
        keys = _title_keys(movies)
    elif {"movieid", "rating"} <= set(column):
        layout, body, needed = MOVIELENS, rows[1:], ("movieid", "rating")
    elif len(header) >= 2 and header[0].isdigit():  # no header: movieId,rating lines
        layout, body, needed, column = MOVIELENS, rows, ("movieId", "rating"), {"movieId": 0, "rating": 1}
    else:
        raise RatingsFileError(
            f"{name}, line {rows[0][0]}: unrecognised header {', '.join(rows[0][1])!r}. Expected "
            "movieId,rating (this app's export, MovieLens), an IMDb ratings export (Const, Your Rating, ...) "
            "or a Letterboxd ratings.csv (Date, Name, Year, Letterboxd URI, Rating)."
        )
    width = max(column[c] for c in needed) + 1
    shown = [rows[0][1][column[c]].strip() for c in needed] if body is not rows else list(needed)
    known = set(movies[ITEM].astype(int))
    found: dict[int, float] = {}
    result = ImportedRatings(layout, [])
    for line, row in body:
        where = f"{name}, line {line}"
        if len(row) < width:
            raise RatingsFileError(
                f"{where}: expected at least {width} columns ({', '.join(shown)}) but "
                f"found {len(row)}: {','.join(row)!r}."
            )
        cell = _cells(row, column)
        if layout == MOVIELENS:
            ident = _positive_id(cell(needed[0]), "the movieId", where)
            stars, label = _stars(cell("rating"), where), f"movie {ident}"
            movie = ident if ident in known else None
        elif layout == IMDB:
            if not re.fullmatch(r"tt[0-9]+", cell("const")):
                raise RatingsFileError(
                    f"{where}: {cell('const')!r} is not an IMDb id (tt and digits 0-9). "
                    "Fix or delete that line and import again."
                )
            stars = _stars(cell("your rating"), where, scale=2)
            movie = by_imdb.get(_positive_id(cell("const")[2:], "the IMDb id number", where))
            label = f"{cell('title')} ({cell('year')})" if cell("title") else cell("const")
        else:
            if not cell("rating"):  # a film logged without stars
                continue
            if not (cell("year").isascii() and cell("year").isdigit() and len(cell("year")) <= 4):
                raise RatingsFileError(f"{where}: the year {cell('year')!r} of {cell('name')!r} is not a number.")
            stars, label = _stars(cell("rating"), where), f"{cell('name')} ({cell('year')})"
            matches = _title_matches(keys, cell("name"), int(cell("year")))
            movie = next(iter(matches)) if len(matches) == 1 else None
            if len(matches) > 1:  # never guessed
                label += f", {len(matches)} movies of that title"
        if movie is None:
            result.unmatched.append(f"line {line}: {label}")
            continue
        if movie in found:
            result.repeated += 1
            del found[movie]  # the last line counts, in its place in the file
        found[movie] = stars
    result.pairs = list(found.items())
    return result


def _cells(row: list[str], column: dict[str, int]):
    """``cell(name)``: that column of ``row``, stripped ("" when the row is shorter)."""
    return lambda name: row[column[name]].strip() if column.get(name, len(row)) < len(row) else ""


def _rows(text: str, name: str):
    reader = csv.reader(io.StringIO(text))
    try:
        start = 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RatingsFileError(f"{name}, line {reader.line_num}: {exc} (is it a CSV file?).") from None


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """A text cell a spreadsheet will not run: one starting like a formula (= + - @, tab, CR) gets a
    leading ``'``, which spreadsheets read as "text follows". Numbers are left as they are."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


def export_ratings(pairs: list[tuple[int, float]], movies: pd.DataFrame) -> str:
    """A profile's ratings as CSV (movieId, imdbId, title, year, rating) that imports back.

    Titles come from the dataset, so text cells go through :func:`spreadsheet_safe`; the import
    matches on movieId alone, so the file reads back unchanged."""
    meta = movies.set_index(ITEM)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for movie_id, rating in pairs:
        row = meta.loc[movie_id] if movie_id in meta.index else None
        year = "" if row is None or pd.isna(row["year"]) else int(row["year"])
        writer.writerow(
            [
                movie_id,
                "" if row is None else spreadsheet_safe(row["imdbId"]),
                "" if row is None else spreadsheet_safe(readable_title(row[TITLE], with_year=False)),
                year,
                f"{rating:g}",
            ]
        )
    return out.getvalue()
