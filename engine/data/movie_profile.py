"""One movie as the ratings describe it: count, mean, popularity rank, the star histogram, the years it
was rated and its most used tags (the similar-movies page's *About* panel, ``python -m engine about``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .movielens import GENRES, ITEM, NO_GENRES, RATING, TAG, TIME, TITLE, USER, MovieLens
from .slices import _utc_years
from .stats import _records


@dataclass
class MovieProfile:
    """One movie as the ratings describe it (the similar-movies page's *About* panel)."""

    movie_id: int
    title: str
    genres: list[str]
    ratings: int
    mean_rating: float | None  # None: nobody rated it
    popularity_rank: int | None  # 1 = the most-rated movie (ties share the better rank)
    users_share: float  # the fraction of all users who rated it
    years_rated: tuple[int, int] | None  # first and last calendar year (UTC) it was rated
    rating_values: pd.DataFrame  # rating (every half star 0.5-5.0), count
    tags: pd.DataFrame  # tag (case-folded), count: most used first

    def as_dict(self) -> dict:
        return {
            **{
                k: getattr(self, k)
                for k in ("movie_id", "title", "genres", "ratings", "mean_rating", "popularity_rank", "users_share")
            },
            "years_rated": list(self.years_rated) if self.years_rated else None,
            "rating_values": _records(self.rating_values),
            "tags": _records(self.tags),
        }


def movie_profile(data: MovieLens, movie_id: int, top_tags: int = 12) -> MovieProfile:
    """Count, mean, popularity rank, rating histogram, years rated and top tags of one movie.

    Raises:
        ValueError: the movie is not in the data's movies.csv.
    """
    row = data.movies[data.movies[ITEM] == int(movie_id)]
    if row.empty:
        raise ValueError(f"Movie id {movie_id} is not in {data.name}'s movies.csv.")
    mine = data.ratings[data.ratings[ITEM] == int(movie_id)]
    counts = data.ratings[ITEM].value_counts()
    halves = np.arange(1, 11) / 2
    values = (
        mine[RATING]
        .astype(float)
        .value_counts()
        .reindex(halves, fill_value=0)
        .rename_axis(RATING)
        .reset_index(name="count")
        .astype({"count": np.int64})
    )
    years = _utc_years(mine[TIME])
    tags = (
        data.tags.loc[data.tags[ITEM] == int(movie_id), TAG]
        .str.lower()
        .value_counts()
        .rename_axis("tag")
        .reset_index(name="count")
        .sort_values(["count", "tag"], ascending=[False, True])
        .head(top_tags)
        .reset_index(drop=True)
    )
    n_users = data.ratings[USER].nunique()
    return MovieProfile(
        movie_id=int(movie_id),
        title=str(row[TITLE].iloc[0]),
        genres=[g for g in str(row[GENRES].iloc[0]).split("|") if g != NO_GENRES],
        ratings=len(mine),
        mean_rating=round(float(mine[RATING].mean()), 4) if len(mine) else None,
        popularity_rank=int((counts > len(mine)).sum()) + 1 if len(mine) else None,
        users_share=round(mine[USER].nunique() / n_users, 6) if n_users else 0.0,
        years_rated=(int(years.min()), int(years.max())) if len(mine) else None,
        rating_values=values,
        tags=tags,
    )
