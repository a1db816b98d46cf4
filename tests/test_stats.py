"""Statistics: pandas and Spark paths agree; definitions checked on generated data."""
from __future__ import annotations

import pandas as pd
import pytest

from engine.stats import compute_stats, compute_stats_spark, top_movies


def _spark_stats(spark, data):
    return compute_stats_spark(spark, spark.createDataFrame(data.ratings),
                               spark.createDataFrame(data.movies[["movieId", "title", "genres"]]),
                               spark.createDataFrame(data.tags))


def _assert_same(a, b):
    assert a.counts == b.counts
    for name in ("ratings_per_user", "ratings_per_movie", "rating_values", "genres",
                 "ratings_per_year", "top_tags"):
        left, right = getattr(a, name).reset_index(drop=True), getattr(b, name).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=False, atol=1e-4,
                                      obj=name)


def test_counts_and_definitions(small_data):
    s = compute_stats(small_data)
    r = small_data.ratings
    assert s.counts["ratings"] == len(r) and s.counts["users"] == r["userId"].nunique()
    assert s.counts["movies_never_rated"] == len(set(small_data.movies.movieId) - set(r.movieId))
    assert s.ratings_per_user["users"].sum() == s.counts["users"]
    assert s.rating_values["count"].sum() == len(r)
    assert "(no genres listed)" in set(s.genres["genre"])
    assert s.top_tags.iloc[0].to_dict() == {"tag": "funny", "count": 2}  # case folded
    assert 0 < s.counts["sparsity"] < 1


@pytest.mark.spark
def test_spark_path_matches_pandas(spark, small_data):
    _assert_same(compute_stats(small_data), _spark_stats(spark, small_data))


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
