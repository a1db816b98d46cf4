"""Statistics: pandas and Spark paths agree; definitions checked on generated data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from engine.data.stats import (
    EmptySlice,
    Slice,
    compute_stats,
    log_binned,
    parse_years,
    slice_data,
    summarize,
    top_movies,
)
from engine.data.stats_spark import compute_stats_spark


def _spark_stats(spark, data, part=None):
    return compute_stats_spark(
        spark,
        spark.createDataFrame(data.ratings),
        spark.createDataFrame(data.movies[["movieId", "title", "genres"]]),
        spark.createDataFrame(data.tags),
        part=part,
    )


def _assert_same(a, b):
    assert a.counts == b.counts
    for name in (
        "ratings_per_user",
        "ratings_per_movie",
        "rating_values",
        "genres",
        "ratings_per_year",
        "top_tags",
        "release_decades",
        "genre_years",
    ):
        left, right = getattr(a, name).reset_index(drop=True), getattr(b, name).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=False, atol=1e-4, obj=name)


def test_counts_and_definitions(small_data):
    s = compute_stats(small_data)
    r = small_data.ratings
    assert s.counts["ratings"] == len(r) and s.counts["users"] == r["userId"].nunique()
    assert s.counts["movies_never_rated"] == len(set(small_data.movies.movieId) - set(r.movieId))
    assert s.ratings_per_user["users"].sum() == s.counts["users"]
    assert s.rating_values["count"].sum() == len(r)
    assert "(no genres listed)" in set(s.genres["genre"])
    for genre in s.genres["genre"]:  # a genre's mean rating is over every rating of its movies
        movies = small_data.movies.loc[
            small_data.movies["genres"].str.split("|").apply(lambda g: genre in g), "movieId"
        ]
        ratings = r.loc[r["movieId"].isin(movies), "rating"]
        row = s.genres.set_index("genre").loc[genre]
        assert row["ratings"] == len(ratings)
        assert pd.isna(row["mean_rating"]) if ratings.empty else abs(row["mean_rating"] - ratings.mean()) < 1e-4
    assert s.top_tags.iloc[0].to_dict() == {"tag": "funny", "count": 2}  # case folded
    per_genre = s.genre_years.groupby("genre")["ratings"].sum()  # every rating of a genre, in some year
    assert per_genre.to_dict() == s.genres.set_index("genre")["ratings"][lambda x: x > 0].to_dict()
    drama_2001 = r[
        r["movieId"].isin(small_data.movies.loc[small_data.movies["genres"].str.contains("Drama"), "movieId"])
    ]
    assert s.genre_years.set_index(["year", "genre"]).loc[(2001, "Drama"), "ratings"] == len(drama_2001)
    assert 0 < s.counts["sparsity"] < 1


@pytest.mark.spark
def test_spark_path_matches_pandas(spark, small_data):
    _assert_same(compute_stats(small_data), _spark_stats(spark, small_data))
    unrated = dataclasses.replace(
        small_data,
        movies=pd.concat(
            [
                small_data.movies,
                pd.DataFrame({"movieId": [999_001], "title": ["Unwatched (2020)"], "genres": ["Film-Noir|Drama"]}),
            ],
            ignore_index=True,
        ),
    )
    _assert_same(compute_stats(unrated), _spark_stats(spark, unrated))  # a genre without a mean


@pytest.mark.spark
def test_spark_reads_a_release_folder_as_pandas_does(spark, tmp_path):
    """The Spark job's own reader (any URI: hdfs://, s3a://, file://) gives the same statistics
    as load_movielens, a movie with an empty genres field under "(no genres listed)" in both."""
    from conftest import generate_movielens, write_release
    from engine.data.movielens import load_movielens
    from engine.data.stats_spark import read_spark_tables

    files = generate_movielens(n_users=30, n_movies=40, seed=3)
    head, first, rest = files["movies.csv"].split("\r\n", 2)
    files["movies.csv"] = "\r\n".join([head, first.rsplit(",", 1)[0] + ",", rest])  # movie 1: no genres
    folder = write_release(tmp_path / "release", files, as_zip=False)
    pandas_stats = compute_stats(load_movielens(folder))
    spark_stats = compute_stats_spark(spark, *read_spark_tables(spark, folder.resolve().as_uri()))
    _assert_same(pandas_stats, spark_stats)
    assert pandas_stats.genres.set_index("genre").loc["(no genres listed)", "movies"] >= 2 and "" not in set(
        spark_stats.genres["genre"]
    )


@pytest.mark.spark
@pytest.mark.integration
def test_spark_path_matches_pandas_on_real_data(spark, real_data):
    a = compute_stats(real_data)
    _assert_same(a, _spark_stats(spark, real_data))
    assert a.counts["ratings"] == 100836 and a.counts["users"] == 610


def test_top_movies(small_data):
    best = top_movies(small_data, by="mean", min_ratings=15, n=5)
    assert (best["ratings"] >= 15).all()
    assert list(best["mean_rating"]) == sorted(best["mean_rating"], reverse=True)
    most = top_movies(small_data, by="count", n=3)
    assert list(most["ratings"]) == sorted(most["ratings"], reverse=True)


@pytest.mark.parametrize("per_decade", [2, 5, 10])
def test_log_binned_recounts_every_value_once(per_decade):
    rng = np.random.default_rng(per_decade)
    sizes = np.unique(np.round(rng.pareto(1.2, 400) * 20 + 3).astype(int))  # heavy tail, gaps
    dist = pd.DataFrame({"n_ratings": sizes, "users": rng.integers(1, 50, len(sizes))})
    bins = log_binned(dist, per_decade)
    assert bins["users"].sum() == dist["users"].sum()
    assert bins["lo"].iloc[0] == sizes.min() and bins["hi"].iloc[-1] == sizes.max()
    assert (bins["lo"].to_numpy()[1:] > bins["hi"].to_numpy()[:-1]).all()  # ordered, no overlap
    for row in bins.itertuples():  # each bin holds exactly the values between its bounds
        inside = dist[(dist["n_ratings"] >= row.lo) & (dist["n_ratings"] <= row.hi)]
        assert row.users == inside["users"].sum() > 0
        assert row.label == (str(row.lo) if row.lo == row.hi else f"{row.lo}–{row.hi}")
    # widths grow by a constant factor: about per_decade bins per tenfold range
    decades = np.log10(sizes.max() / sizes.min())
    assert len(bins) <= per_decade * (decades + 1) + 1


def test_log_binned_keeps_small_counts_exact():
    dist = pd.DataFrame({"n_ratings": [1, 2, 3, 5, 8, 250], "movies": [40, 20, 10, 6, 3, 1]})
    bins = log_binned(dist)
    assert list(bins["label"][:3]) == ["1", "2", "3"] and list(bins["movies"][:3]) == [40, 20, 10]
    assert bins["label"].iloc[-1].endswith("–250")
    assert summarize(dist) == {"min": 1, "median": 1.5, "mean": round(414 / 80, 3), "max": 250}  # 80 movies


def test_a_genre_nobody_rated_has_no_mean_and_json_stays_valid(small_data):
    movies = pd.concat(
        [
            small_data.movies,
            pd.DataFrame({"movieId": [999_001], "title": ["Unwatched (2020)"], "genres": ["Film-Noir"]}),
        ],
        ignore_index=True,
    )
    s = compute_stats(dataclasses.replace(small_data, movies=movies))
    noir = s.genres.set_index("genre").loc["Film-Noir"]
    assert noir["movies"] == 1 and noir["ratings"] == 0 and pd.isna(noir["mean_rating"])
    out = json.loads(json.dumps(s.as_dict(), allow_nan=False, default=lambda o: o.item()))
    assert {"genre": "Film-Noir", "movies": 1, "ratings": 0, "mean_rating": None} in out["genres"]


# ---------------------------------------------------------------------- slices
def _spread_over_years(data):
    """The generated ratings and tags given across 1996-2019 instead of one day in 2001."""
    r = data.ratings.copy()
    r["timestamp"] = 820_454_400 + (r.index.to_numpy() * 7_919_993) % (24 * 31_536_000)
    t = data.tags.assign(timestamp=[850_000_000, 1_000_000_000, 1_300_000_000, 1_500_000_000])
    return dataclasses.replace(data, ratings=r, tags=t)


def _expected_ratings(data, genres=(), released=None, rated=None) -> pd.DataFrame:
    """The slice's ratings, worked out row by row from the definitions (independently of slice_data)."""
    import datetime as dt
    import re

    keep = set()
    for movie, title, genre_text in data.movies[["movieId", "title", "genres"]].itertuples(index=False):
        m = re.search(r"\((\d{4})\)\s*$", title)
        if genres and not set(genre_text.split("|")) & set(genres):
            continue
        if released and not (m and released[0] <= int(m.group(1)) <= released[1]):
            continue
        keep.add(movie)
    rows = [
        row
        for row in data.ratings.itertuples(index=False)
        if row.movieId in keep
        and (not rated or rated[0] <= dt.datetime.fromtimestamp(row.timestamp, dt.timezone.utc).year <= rated[1])
    ]
    return pd.DataFrame(rows, columns=data.ratings.columns)


SLICES = [
    Slice(genres=("Comedy",)),
    Slice(released=(1990, 2004)),
    Slice(rated=(2005, 2012)),
    Slice(genres=("Drama", "Horror"), released=(1985, 2010), rated=(2000, 2015)),
]


@pytest.mark.parametrize("part", SLICES, ids=lambda p: p.describe())
def test_a_slice_keeps_exactly_its_movies_and_ratings(small_data, part):
    data = _spread_over_years(small_data)
    want = _expected_ratings(data, part.genres, part.released, part.rated)
    got = slice_data(data, part)
    assert 0 < len(got.ratings) < len(data.ratings)
    assert sorted(map(tuple, got.ratings[["userId", "movieId"]].to_numpy())) == sorted(
        map(tuple, want[["userId", "movieId"]].to_numpy())
    )
    s = compute_stats(data, part=part)
    assert s.counts["ratings"] == len(want) and s.counts["users"] == want["userId"].nunique()
    assert s.counts["rated_movies"] == want["movieId"].nunique()
    assert s.counts["movies"] - s.counts["movies_never_rated"] == s.counts["rated_movies"]


def test_release_decades_follow_the_titles(small_data):
    s = compute_stats(small_data)
    years = small_data.movies["title"].str.extract(r"\((\d{4})\)\s*$", expand=False).astype(int)
    assert s.release_decades["movies"].sum() == len(years)
    assert list(s.release_decades["decade"]) == sorted((years // 10 * 10).unique())
    eighties = small_data.movies.loc[(years >= 1980) & (years < 1990), "movieId"]
    row = s.release_decades.set_index("decade").loc[1980]
    ratings = small_data.ratings.loc[small_data.ratings["movieId"].isin(eighties), "rating"]
    assert row["ratings"] == len(ratings) and abs(row["mean_rating"] - ratings.mean()) < 1e-4


@pytest.mark.spark
def test_spark_slices_match_pandas(spark, small_data):
    data = _spread_over_years(small_data)
    for part in SLICES[-2:]:  # one filter alone, and all three together (each Spark job takes seconds)
        _assert_same(compute_stats(data, part=part), _spark_stats(spark, data, part))
    with pytest.raises(EmptySlice, match="No ratings for Horror movies released 1980"):
        _spark_stats(spark, data, Slice(genres=("Horror",), released=(1980, 1980), rated=(1996, 1996)))


def test_an_empty_slice_and_bad_slices_say_what_to_change(small_data):
    data = _spread_over_years(small_data)
    with pytest.raises(EmptySlice, match="No ratings for Horror movies released 1980, ratings given 1996"):
        compute_stats(data, part=Slice(genres=("Horror",), released=(1980, 1980), rated=(1996, 1996)))
    with pytest.raises(ValueError, match="Unknown genre 'Noir'. Genres in this data: .*Comedy"):
        slice_data(data, Slice(genres=("Noir",)))
    with pytest.raises(ValueError, match="ends before it starts"):
        Slice(released=(2000, 1990))
    assert slice_data(data, Slice()) is data and Slice().describe() == "all movies and ratings"
    from engine.data.stats import slice_bounds

    bounds = slice_bounds(data)
    assert bounds["released"] == (1980, 2019) and bounds["rated"][0] >= 1996 and "Comedy" in bounds["genres"]


@pytest.mark.parametrize(
    "text, years",
    [
        ("1995", (1995, 1995)),
        ("1990-1999", (1990, 1999)),
        ("1990 – 1999", (1990, 1999)),
        ("1990..1999", (1990, 1999)),
        ("1990 to 1999", (1990, 1999)),
    ],
)
def test_parse_years(text, years):
    assert parse_years(text) == years


@pytest.mark.parametrize(
    "text, message",
    [("nineties", "not a year or a range"), ("1999-1990", "1990-1999"), ("199", "not a year"), ("1990-", "not a year")],
)
def test_parse_years_rejects_with_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        parse_years(text, "--released")


def test_movie_profile_counts_what_people_did(small_data):
    from engine.data.movie_profile import movie_profile

    r = small_data.ratings[small_data.ratings["movieId"] == 1]
    p = movie_profile(small_data, 1)
    assert p.ratings == len(r) and abs(p.mean_rating - r["rating"].mean()) < 1e-4
    assert p.rating_values["count"].sum() == len(r) and len(p.rating_values) == 10  # every half star
    counts = small_data.ratings["movieId"].value_counts()
    assert p.popularity_rank == 1 + (counts > len(r)).sum()
    assert p.users_share == pytest.approx(r["userId"].nunique() / small_data.ratings["userId"].nunique(), abs=1e-6)
    assert p.years_rated == (2001, 2001)
    assert p.tags.to_dict(orient="records") == [{"tag": "funny", "count": 2}]  # "funny" and "Funny"
    assert p.title == small_data.movies.set_index("movieId").loc[1, "title"]
    json.dumps(p.as_dict())
    most = int(counts.index[0])
    assert movie_profile(small_data, most).popularity_rank == 1
    unrated = dataclasses.replace(
        small_data,
        movies=pd.concat(
            [
                small_data.movies,
                pd.DataFrame({"movieId": [999_001], "title": ["Unwatched (2020)"], "genres": ["Film-Noir"]}),
            ],
            ignore_index=True,
        ),
    )
    nobody = movie_profile(unrated, 999_001)
    assert nobody.ratings == 0 and nobody.mean_rating is None and nobody.popularity_rank is None
    with pytest.raises(ValueError, match="Movie id 424242 is not in"):
        movie_profile(small_data, 424242)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concentration_matches_the_textbook_gini(seed):
    from engine.data.stats import concentration

    rng = np.random.default_rng(seed)
    sizes = np.round(rng.pareto(1.1, 300) * 5 + 1).astype(int)
    dist = pd.Series(sizes).value_counts().sort_index().rename_axis("n_ratings").reset_index(name="movies")
    curve, gini = concentration(dist)
    brute = np.abs(sizes[:, None] - sizes[None, :]).sum() / (2 * len(sizes) ** 2 * sizes.mean())
    assert gini == pytest.approx(brute, abs=1e-4)
    top = np.sort(sizes)[::-1]
    for share in (0.1, 0.5):  # the curve: what the most-rated share of movies holds
        k = int(round(share * len(sizes)))
        y = curve.loc[np.isclose(curve["share_of_items"], share), "share_of_ratings"].item()
        assert y == pytest.approx(top[:k].sum() / sizes.sum(), abs=1e-6)
    assert curve.iloc[0].tolist() == [0, 0] and curve.iloc[-1].tolist() == [1, 1]
    assert (np.diff(curve["share_of_ratings"]) >= 0).all()
    even, g0 = concentration(pd.DataFrame({"n_ratings": [7], "movies": [50]}))
    assert g0 == 0 and np.allclose(even["share_of_ratings"], even["share_of_items"])


def test_a_slice_by_years_rated_counts_only_the_movies_rated_in_it(small_data):
    """Issue 24, item 10: "ratings given 2007-2018 ... 9,742 of 9,742 movies" counted every movie,
    rated in those years or not."""
    from engine.data.stats import slice_figures

    data = _spread_over_years(small_data)
    part = Slice(rated=(2001, 2004))
    years = pd.to_datetime(data.ratings["timestamp"], unit="s", utc=True).dt.year
    rated = data.ratings.loc[years.between(2001, 2004), "movieId"].nunique()
    assert 0 < rated < len(data.movies)
    line = slice_figures(compute_stats(data, part=part), compute_stats(data))
    assert f"of {rated:,} of {len(data.movies):,} movies (those rated in the slice)" in line, line


@pytest.mark.parametrize(
    "location, label",
    [
        ("/srv/data/ml-latest-small.zip", "MovieLens latest-small (ml-latest-small.zip)"),
        ("https://files.grouplens.org/datasets/movielens/ml-25m.zip", "MovieLens 25m (ml-25m.zip)"),
        ("s3a://bucket/releases/ml-1m/", "MovieLens 1m (ml-1m)"),
        ("/home/sam/my-ratings", "my-ratings"),
    ],
)
def test_dataset_label_names_the_release_without_the_servers_folders(location, label):
    from engine.data.stats import dataset_label

    assert dataset_label(location) == label


# ---------------------------------------------------------------------- DuckDB over the prepared Parquet
def _columnar(data, tmp_path):
    """``data`` written as a GroupLens folder, prepared to Parquet, opened with DuckDB."""
    from engine.data.prepare import prepare_release
    from engine.data.stats_columnar import ColumnarRelease
    from engine.settings import get_settings

    folder = tmp_path / "release"
    folder.mkdir()
    data.ratings.to_csv(folder / "ratings.csv", index=False)
    data.movies[["movieId", "title", "genres"]].to_csv(folder / "movies.csv", index=False)
    data.tags.to_csv(folder / "tags.csv", index=False)
    settings = dataclasses.replace(get_settings(), movielens_data=str(folder), data_dir=tmp_path / "data")
    return ColumnarRelease(prepare_release(settings))


def _assert_identical(a, b):
    """Every number and table the same, to the last bit and dtype (no tolerance, unlike the Spark check)."""
    assert a.counts == b.counts
    for name in (
        "ratings_per_user",
        "ratings_per_movie",
        "rating_values",
        "genres",
        "ratings_per_year",
        "top_tags",
        "release_decades",
        "genre_years",
    ):
        pd.testing.assert_frame_equal(
            getattr(a, name).reset_index(drop=True), getattr(b, name).reset_index(drop=True), check_exact=True, obj=name
        )
    assert a.as_dict() == b.as_dict()


@pytest.mark.parametrize(
    "part", [Slice(), *SLICES, Slice(genres=("Film-Noir",)), Slice(rated=(2001, 2001))], ids=lambda p: p.describe()
)
def test_duckdb_path_matches_pandas_exactly(small_data, tmp_path, part):
    from engine.data.stats import slice_bounds, slice_figures

    data = _spread_over_years(small_data)
    data = dataclasses.replace(
        data,
        movies=pd.concat(
            [
                data.movies,
                pd.DataFrame(  # a genre nobody rated
                    {"movieId": [999_001], "title": ["Unwatched (2020)"], "genres": ["Film-Noir|Drama"]}
                ),
            ],
            ignore_index=True,
        ),
        tags=pd.concat(
            [
                data.tags,
                pd.DataFrame({"userId": [4], "movieId": [999_002], "tag": ["Lost"], "timestamp": [1_400_000_000]}),
            ],
            ignore_index=True,
        ),
    )
    release = _columnar(data, tmp_path)
    if part.genres == ("Film-Noir",):
        with pytest.raises(EmptySlice, match="No ratings for Film-Noir movies"):
            compute_stats(data, part=part)
        with pytest.raises(EmptySlice, match="No ratings for Film-Noir movies"):
            release.stats(part)
        return
    a, b = compute_stats(data, part=part), release.stats(part)
    _assert_identical(a, b)
    assert slice_figures(a, compute_stats(data)) == slice_figures(b, release.stats())
    for by, least in (("count", 1), ("mean", 3), ("mean", 40)):
        pd.testing.assert_frame_equal(
            top_movies(slice_data(data, part), by=by, min_ratings=least),
            release.top_movies(part, by=by, min_ratings=least),
            check_exact=True,
        )
    assert release.bounds() == slice_bounds(data)
    with pytest.raises(ValueError, match="Unknown genre 'Noir'"):
        release.stats(Slice(genres=("Noir",)))


def test_duckdb_path_with_movie_ids_near_the_int32_limit(small_data, tmp_path):
    """Movie ids up to 2^31 - 1 (allowed) are found by search: no table as long as the largest id."""
    data = _spread_over_years(small_data)
    big = {m: 2_147_483_647 - i for i, m in enumerate(data.movies["movieId"].head(50))}
    data = dataclasses.replace(
        data,
        movies=data.movies.assign(movieId=data.movies["movieId"].replace(big)),
        ratings=data.ratings.assign(movieId=data.ratings["movieId"].replace(big)),
        tags=data.tags.assign(movieId=data.tags["movieId"].replace(big)),
    )
    release = _columnar(data, tmp_path)
    for part in (Slice(), SLICES[0], Slice(genres=("Comedy",), rated=(2001, 2003))):
        _assert_identical(compute_stats(data, part=part), release.stats(part))


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_user_cells_file_names_itself_and_the_fix(small_data, tmp_path, damage):
    from engine.data.movielens import DataError

    release = _columnar(_spread_over_years(small_data), tmp_path)
    release.stats()  # everything: from the summaries, without the per-rating cells
    path = release.folder / "user_cells.npz"
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:100])
    release.warm()  # the app's background open stays quiet: the slice that needs the file says what is wrong
    assert release.stats() is release._whole
    with pytest.raises(DataError, match=r"user_cells.npz cannot be read .*run `python -m engine prepare-data` again"):
        release.stats(SLICES[0])


def _assert_same_profile(a, b):
    assert a.as_dict() == b.as_dict(), a.movie_id
    pd.testing.assert_frame_equal(a.rating_values, b.rating_values, check_exact=True)
    pd.testing.assert_frame_equal(a.tags, b.tags, check_exact=True)


def test_duckdb_movie_profile_equals_pandas_for_every_movie(small_data, tmp_path):
    """The similar page's About panel from the prepared release: what load_movielens + movie_profile give."""
    from engine.data.movie_profile import movie_profile
    from engine.data.movielens import load_movielens

    data = _spread_over_years(small_data)
    data = dataclasses.replace(
        data,
        movies=pd.concat(
            [data.movies, pd.DataFrame({"movieId": [999_001], "title": ["Unwatched (2020)"], "genres": ["Drama"]})],
            ignore_index=True,
        ),
    )
    release = _columnar(data, tmp_path)
    loaded = load_movielens(tmp_path / "release")  # the pandas path as the app reads it (float32 stars)
    for movie in loaded.movies["movieId"]:
        _assert_same_profile(movie_profile(loaded, movie), release.movie_profile(movie))
    assert release.movie_profile(999_001).ratings == 0
    with pytest.raises(ValueError, match="Movie id 123456789 is not in"):
        release.movie_profile(123456789)


@pytest.mark.integration
def test_duckdb_movie_profile_equals_pandas_on_real_data(real_data, movielens_zip, tmp_path):
    from engine.data.movie_profile import movie_profile
    from engine.data.prepare import prepare_release
    from engine.data.stats_columnar import ColumnarRelease
    from engine.settings import get_settings

    settings = dataclasses.replace(get_settings(), movielens_data=str(movielens_zip), data_dir=tmp_path)
    release = ColumnarRelease(prepare_release(settings))
    counts = real_data.ratings["movieId"].value_counts()
    tagged = real_data.tags["movieId"].value_counts().index[:40]
    rng = np.random.default_rng(0)
    movies = {*counts.index[:40], *tagged, *rng.choice(real_data.movies["movieId"], 120, replace=False)}
    for movie in sorted(int(m) for m in movies):
        _assert_same_profile(movie_profile(real_data, movie), release.movie_profile(movie))
