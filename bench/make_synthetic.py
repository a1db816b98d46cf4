"""Write a synthetic MovieLens release in GroupLens's layout, shaped like ml-25m, for scale tests.

Seeded and generated in minutes, never committed (it goes to the git-ignored ``data/``):

    python bench/make_synthetic.py                     # 25 M ratings: data/synthetic/ml-synth-25m/
    python bench/make_synthetic.py --ratings 1000000   # the same shape at 1 M (users and movies scaled)

Shape (ml-25m: 162,541 users, 59,047 rated movies, 25,000,095 ratings):
- users and movies scale with the ratings; every user has at least 20 ratings (as GroupLens keeps);
- activity and popularity are long-tailed (log-normal activity, Zipf-like popularity): a few movies
  have tens of thousands of ratings, most have a handful;
- ratings come from a low-rank model (rank 8) plus user and movie biases and noise, mapped onto
  ml-25m's star histogram, so ALS has structure to learn and the histogram looks real;
- movies have titles with release years (1902-2019, skewed to recent), 1-3 of the 19 GroupLens genres,
  and each rating's time falls after its movie's release, between 1995 and 2019.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent

ML25M = {"users": 162_541, "movies": 59_047, "ratings": 25_000_095}
# ml-25m's share of each star value, 0.5 ... 5.0
STARS = np.arange(1, 11) / 2
STAR_SHARE = np.array([1.57, 3.12, 1.59, 6.57, 5.04, 19.61, 12.55, 26.63, 8.84, 14.48]) / 100
GENRES = [
    "Drama",
    "Comedy",
    "Thriller",
    "Romance",
    "Action",
    "Horror",
    "Documentary",
    "Crime",
    "Adventure",
    "Sci-Fi",
    "Children",
    "Animation",
    "Mystery",
    "Fantasy",
    "War",
    "Western",
    "Musical",
    "Film-Noir",
    "IMAX",
]
GENRE_WEIGHT = np.array([25, 16, 8, 7, 7, 6, 5, 5, 4, 3, 3, 3, 3, 3, 2, 1.5, 1, 0.5, 0.3])
MIN_PER_USER = 20
T0, T1 = 788_918_400, 1_574_000_000  # 1995-01-01 .. 2019-11 (ml-25m's span)


def shape_for(n_ratings: int) -> tuple[int, int]:
    """Users and movies for ``n_ratings``, in ml-25m's proportions (at least 200 users and 2,000 movies)."""
    scale = n_ratings / ML25M["ratings"]
    return max(200, round(ML25M["users"] * scale)), max(2000, round(ML25M["movies"] * scale))


def generate(n_ratings: int, seed: int = 25, rank: int = 8) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_users, n_movies = shape_for(n_ratings)

    # How many ratings each user gives: at least 20, log-normal above that, summing to n_ratings.
    extra = rng.lognormal(mean=0.0, sigma=1.3, size=n_users)
    extra = extra / extra.sum() * max(0, n_ratings - MIN_PER_USER * n_users)
    per_user = MIN_PER_USER + np.floor(extra).astype(np.int64)
    per_user[: n_ratings - per_user.sum()] += 1  # exact total
    cap = n_movies // 2  # nobody rates half the catalogue
    while (short := n_ratings - np.minimum(per_user, cap).sum()) > 0 and (per_user < cap).any():
        per_user = np.minimum(per_user, cap)  # what the cap took goes to others
        np.add.at(per_user, rng.choice(np.flatnonzero(per_user < cap), size=short), 1)
    per_user = np.minimum(per_user, cap)

    # Which movies: Zipf-like popularity; draw with replacement, drop repeats, top up until done.
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.95
    popularity = rng.permutation(popularity)
    cdf = np.cumsum(popularity / popularity.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    keys = np.empty(0, dtype=np.int64)
    want = users
    while want.size:
        items = np.minimum(np.searchsorted(cdf, rng.random(want.size)), n_movies - 1)
        keys = np.unique(np.concatenate([keys, want * n_movies + items]))
        have = np.bincount(keys // n_movies, minlength=n_users)
        missing = np.maximum(per_user - have, 0)
        want = np.repeat(np.arange(n_users, dtype=np.int64), missing)
    # np.unique may overshoot nobody (each user's draws were exactly what was missing, minus repeats)
    u, i = keys // n_movies, keys % n_movies

    # Stars: a low-rank taste model, mapped onto ml-25m's histogram by rank.
    uf = rng.normal(size=(n_users, rank)).astype(np.float32)
    vf = rng.normal(size=(n_movies, rank)).astype(np.float32)
    score = np.empty(u.size, dtype=np.float32)
    for start in range(0, u.size, 2_000_000):  # chunks keep memory flat
        s = slice(start, start + 2_000_000)
        score[s] = np.einsum("ij,ij->i", uf[u[s]], vf[i[s]]) / np.sqrt(rank)
    score += rng.normal(0, 0.6, n_users).astype(np.float32)[u]  # user bias
    score += rng.normal(0, 0.8, n_movies).astype(np.float32)[i]  # movie bias
    score += rng.normal(0, 0.7, u.size).astype(np.float32)  # noise
    order = np.argsort(score, kind="stable")
    cuts = np.round(np.cumsum(STAR_SHARE) * u.size).astype(np.int64)
    stars = np.empty(u.size, dtype=np.float32)
    stars[order] = np.repeat(STARS, np.diff(np.concatenate([[0], cuts])))

    # Movies: release years skewed to recent decades, 1-3 genres each.
    years = np.clip(np.round(2020 - rng.gamma(1.6, 14, n_movies)), 1902, 2019).astype(int)
    weights = GENRE_WEIGHT / GENRE_WEIGHT.sum()
    genre_count = rng.choice([1, 2, 3], size=n_movies, p=[0.45, 0.35, 0.20])
    genres = ["|".join(sorted(rng.choice(GENRES, size=k, replace=False, p=weights))) for k in genre_count]
    movie_ids = np.arange(1, n_movies + 1)
    movies = pd.DataFrame(
        {
            "movieId": movie_ids,
            "title": [f"Synthetic Movie {m} ({y})" for m, y in zip(movie_ids, years)],
            "genres": genres,
        }
    )

    # When: each user is active over a stretch of 1995-2019, never before the movie came out.
    start = rng.uniform(T0, T1, n_users)
    span = np.minimum(rng.exponential(2 * 365 * 86400, n_users), T1 - start)
    when = start[u] + rng.random(u.size) * span[u]
    released = (np.asarray(years) - 1970) * 365.25 * 86400
    when = np.clip(np.maximum(when, released[i] + 86400 * 30), T0, T1).astype(np.int64)

    ratings = pd.DataFrame(
        {"userId": (u + 1).astype(np.int32), "movieId": (i + 1).astype(np.int32), "rating": stars, "timestamp": when}
    )
    links = pd.DataFrame(
        {"movieId": movie_ids, "imdbId": [f"{9_000_000 + m:07d}" for m in movie_ids], "tmdbId": movie_ids + 900_000}
    )
    tagged = rng.choice(ratings.index.to_numpy(), size=min(ratings.shape[0] // 25, 1_000_000), replace=False)
    words = np.array(
        [
            "classic",
            "funny",
            "dark",
            "twist ending",
            "visually appealing",
            "atmospheric",
            "slow",
            "based on a book",
            "great soundtrack",
            "overrated",
        ]
    )
    tags = pd.DataFrame(
        {
            "userId": ratings["userId"].to_numpy()[tagged],
            "movieId": ratings["movieId"].to_numpy()[tagged],
            "tag": words[rng.integers(0, words.size, tagged.size)],
            "timestamp": ratings["timestamp"].to_numpy()[tagged],
        }
    )
    return {"ratings": ratings, "movies": movies, "links": links, "tags": tags}


def name_for(n_ratings: int) -> str:
    return f"ml-synth-{n_ratings // 1_000_000}m" if n_ratings >= 1_000_000 else f"ml-synth-{n_ratings // 1000}k"


def write(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """GroupLens's layout: four CSV files with a header, comma-separated, UTF-8."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        tmp = folder / f".{name}.csv.tmp"
        df.to_csv(tmp, index=False, float_format="%.1f" if name == "ratings" else None, chunksize=1_000_000)
        tmp.replace(folder / f"{name}.csv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratings", type=int, default=ML25M["ratings"], help="how many ratings (default: ml-25m's)")
    ap.add_argument("--seed", type=int, default=25)
    ap.add_argument("--out", type=Path, help="folder to write (default: data/synthetic/<name>)")
    args = ap.parse_args(argv)
    if args.ratings < 10_000:
        ap.error("--ratings must be at least 10000")
    out = args.out or REPO / "data" / "synthetic" / name_for(args.ratings)
    t = time.perf_counter()
    tables = generate(args.ratings, args.seed)
    t_gen = time.perf_counter() - t
    write(tables, out)
    r = tables["ratings"]
    print(
        f"{out}: {len(r):,} ratings, {r['userId'].nunique():,} users, {r['movieId'].nunique():,} rated movies "
        f"of {len(tables['movies']):,}; generated in {t_gen:.1f} s, written in {time.perf_counter() - t - t_gen:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
