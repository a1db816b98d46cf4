"""Slices of a release for the statistics: genres, release years, years rated.

A :class:`Slice` narrows the data first, with :func:`slice_data` (pandas) or
:func:`~engine.data.stats_spark.slice_spark` (Spark), and the same statistics
(:mod:`engine.data.stats`) then describe that part of the catalogue.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from .movielens import ITEM, TIME, TITLE, MovieLens, explode_genres, release_years

if TYPE_CHECKING:
    from .stats import DatasetStats


class EmptySlice(ValueError):
    """No rating falls in the slice asked for; the message says which slice and what to widen."""


_YEARS = re.compile(r"^\s*(\d{4})\s*(?:(?:-|–|\.\.|to)\s*(\d{4})\s*)?$")


def parse_years(text: str, what: str = "years") -> tuple[int, int]:
    """``"1990-1999"`` (also ``1990–1999``, ``1990..1999``, ``1990 to 1999``) or ``"1995"`` -> (lo, hi).

    >>> parse_years("1990-1999"), parse_years("1995")
    ((1990, 1999), (1995, 1995))
    """
    m = _YEARS.match(str(text))
    if not m:
        raise ValueError(f"{what}: {text!r} is not a year or a range of years. Write it like 1995 or 1990-1999.")
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if lo > hi:
        raise ValueError(f"{what}: {text!r} ends before it starts. Write the earlier year first: {hi}-{lo}.")
    return lo, hi


@dataclass(frozen=True)
class Slice:
    """Part of the data to describe: movies by genre (any of) and release year, ratings by year given.

    ``released`` and ``rated`` are inclusive ``(first, last)`` calendar years; a movie
    whose title has no year is outside every ``released`` range. ``None`` and ``()``
    mean "no limit". Ratings (and tags) are those of the movies kept, given in ``rated``.
    """

    genres: tuple[str, ...] = ()
    released: tuple[int, int] | None = None
    rated: tuple[int, int] | None = None

    def __post_init__(self):
        object.__setattr__(self, "genres", tuple(sorted(set(self.genres))))
        for name in ("released", "rated"):
            span = getattr(self, name)
            if span is not None:
                lo, hi = (int(v) for v in span)
                if lo > hi:
                    raise ValueError(f"{name}: {lo}-{hi} ends before it starts. Write the earlier year first.")
                object.__setattr__(self, name, (lo, hi))

    @property
    def everything(self) -> bool:
        return not self.genres and self.released is None and self.rated is None

    def describe(self) -> str:
        """``"Comedy or Drama movies released 1990–1999, ratings given 2000–2010"``."""
        if self.everything:
            return "all movies and ratings"
        span = lambda lo, hi: str(lo) if lo == hi else f"{lo}–{hi}"
        movies = (" or ".join(self.genres) + " movies") if self.genres else "movies"
        if self.released:
            movies += f" released {span(*self.released)}"
        return movies + (f", ratings given {span(*self.rated)}" if self.rated else "")

    def check_genres(self, known) -> None:
        """Raise ValueError naming a genre the data does not have (and the ones it has)."""
        known = set(known)
        unknown = [g for g in self.genres if g not in known]
        if unknown:
            raise ValueError(f"Unknown genre {unknown[0]!r}. Genres in this data: {', '.join(sorted(known))}.")


def slice_figures(part: DatasetStats, whole: DatasetStats) -> str:
    """What a slice holds against the whole data, in one sentence for the statistics page.

    A slice's movies are those with at least one rating in it: a slice by the years
    ratings were given keeps every movie in ``movies``, and counting those would say
    "9,742 of 9,742 movies" for years in which most of them were never rated.

    >>> slice_figures(part, whole)  # doctest: +SKIP
    '181 ratings (0.2 % of all) of 32 of 9,742 movies (those rated in the slice), by 69 of 610 users'
    """
    c, w = part.counts, whole.counts
    return (
        f"{c['ratings']:,} ratings ({c['ratings'] / w['ratings']:.1%} of all) of {c['rated_movies']:,} "
        f"of {w['movies']:,} movies (those rated in the slice), by {c['users']:,} of {w['users']:,} users"
    )


def _utc_years(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(seconds, unit="s", utc=True).dt.year


def slice_bounds(data: MovieLens) -> dict:
    """What a slice can choose from: ``genres`` (sorted), ``released`` and ``rated`` as (first, last)
    calendar years; ``released`` is None when no title carries a year."""
    years = release_years(data.movies[TITLE]).dropna()
    rated = _utc_years(data.ratings[TIME])
    return {
        "genres": sorted(explode_genres(data.movies)["genre"].unique()),
        "released": (int(years.min()), int(years.max())) if len(years) else None,
        "rated": (int(rated.min()), int(rated.max())),
    }


def slice_data(data: MovieLens, part: Slice) -> MovieLens:
    """The movies, ratings and tags in ``part`` (pandas); raises :class:`EmptySlice` when no rating is.

    >>> slice_data(data, Slice(genres=("Comedy",), released=(1990, 1999)))  # doctest: +SKIP
    """
    if part.everything:
        return data
    movies = data.movies
    if part.genres:
        g = explode_genres(movies)
        part.check_genres(g["genre"].unique())
        movies = movies[movies[ITEM].isin(g.loc[g["genre"].isin(part.genres), ITEM])]
    if part.released:
        movies = movies[release_years(movies[TITLE]).between(*part.released).fillna(False).astype(bool)]
    ratings = data.ratings[data.ratings[ITEM].isin(movies[ITEM])]
    tags = data.tags[data.tags[ITEM].isin(movies[ITEM])]
    if part.rated:
        ratings = ratings[_utc_years(ratings[TIME]).between(*part.rated)]
        tags = tags[_utc_years(tags[TIME]).between(*part.rated)]
    if ratings.empty:
        raise EmptySlice(f"No ratings for {part.describe()}. Choose more genres or widen the years.")
    return dataclasses.replace(
        data,
        movies=movies.reset_index(drop=True),
        ratings=ratings.reset_index(drop=True),
        tags=tags.reset_index(drop=True),
        name=f"{data.name}: {part.describe()}",
    )
