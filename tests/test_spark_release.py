"""train / tune / evaluate read the ratings with Spark (issue 25): from the prepared Parquet, from a URI
(Parquet or GroupLens CSV), with a split that does not move with the partitioning, and the model's ratings
table written by Spark."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from conftest import generate_movielens, write_release
from engine.data.movielens import DataError
from engine.settings import get_settings

pytestmark = pytest.mark.spark


def _settings(location, data_dir):
    return dataclasses.replace(get_settings(), movielens_data=str(location), data_dir=data_dir)


@pytest.fixture(scope="module")
def folder_release(tmp_path_factory):
    """A GroupLens release as a plain folder of CSV files (what a URI points at)."""
    return write_release(tmp_path_factory.mktemp("uri-release"), generate_movielens(seed=11), as_zip=False)


def _pairs(df) -> set:
    return {(int(r.userId), int(r.movieId)) for r in df.select("userId", "movieId").collect()}


def test_a_local_release_is_read_by_spark_from_its_parquet(spark, small_release, small_data, tmp_path):
    from engine.data.spark_release import open_release

    release = open_release(spark, _settings(small_release, tmp_path / "data"))
    plan = release.ratings._jdf.queryExecution().optimizedPlan().toString()
    assert "parquet" in plan.lower() and "LocalRelation" not in plan  # read from storage, not sent from pandas
    assert release.ratings.columns == ["userId", "movieId", "rating"]
    assert release.fingerprint == small_data.fingerprint and release.n_ratings == len(small_data.ratings)
    got = release.ratings.toPandas().sort_values(["userId", "movieId"]).reset_index(drop=True)
    want = small_data.ratings[["userId", "movieId", "rating"]].sort_values(["userId", "movieId"])
    np.testing.assert_array_equal(got.to_numpy(float), want.reset_index(drop=True).to_numpy(float))
    assert release.movies["movieId"].tolist() == small_data.movies["movieId"].tolist()


def test_the_split_does_not_move_with_the_partitioning(spark, small_data):
    from engine.recommender.training import ALSConfig, ratings_frame, split

    ratings = ratings_frame(spark, small_data)
    cfg = ALSConfig(split_seed=42)
    sides = []
    for parts in (1, 3, 8):
        train, test = split(ratings.repartition(parts), cfg)
        sides.append((_pairs(train), _pairs(test)))
    assert sides[0] == sides[1] == sides[2]
    train, test = sides[0]
    assert not train & test and 0.15 < len(test) / (len(train) + len(test)) < 0.25
    other = split(ratings, dataclasses.replace(cfg, split_seed=7))[1]
    assert _pairs(other) != test  # the seed chooses the split


def test_training_from_parquet_equals_training_from_pandas(spark, small_release, small_data, small_model, tmp_path):
    from engine.data.spark_release import open_release
    from engine.recommender.training import ALSConfig, train_and_evaluate

    release = open_release(spark, _settings(small_release, tmp_path / "data"))
    cfg = ALSConfig(rank=4, max_iter=10, reg_param=0.1, min_ratings=1)  # small_model's
    result = train_and_evaluate(spark, release, cfg, progress=lambda f, m: None)
    before = small_model[2]["metrics"]
    for key in ("n_train", "n_test"):
        assert result["metrics"][key] == before[key], key
    assert result["metrics"]["test_rmse"] == pytest.approx(before["test_rmse"], abs=2e-3)
    assert result["params"]["dataset"]["fingerprint"] == small_data.fingerprint
    assert result["params"]["dataset"]["n_ratings"] == len(small_data.ratings)


def test_the_saved_ratings_table_is_written_by_spark_sorted_and_compact(small_model, small_data):
    import pyarrow.parquet as pq

    from engine.recommender.serving import RecommenderIndex

    _, path, _ = small_model
    table = path / "ratings.parquet"
    assert table.is_file() and not list(path.glob(".*spark*"))  # Spark's one sorted file, moved into place
    saved = pq.read_table(table)
    assert [str(t) for t in saved.schema.types] == ["int32", "int32", "float"]
    users = saved.column("userId").to_numpy()
    assert (np.diff(users) >= 0).all() and saved.num_rows == len(small_data.ratings)
    index = RecommenderIndex.load(path)
    some = int(small_data.ratings["userId"].iloc[0])
    history = set(small_data.ratings.loc[small_data.ratings["userId"] == some, "movieId"])
    assert not history & set(index.recommend(some, 20, explain=False)["movieId"])


@pytest.mark.parametrize("layout", ["csv", "parquet"])
def test_a_uri_is_read_where_it_lies(spark, folder_release, tmp_path, layout):
    from engine.data.prepare import load_prepared, prepare_release
    from engine.data.spark_release import open_release

    if layout == "csv":
        location = folder_release
    else:
        location = prepare_release(_settings(folder_release, tmp_path / "data"))
    release = open_release(spark, _settings(location.resolve().as_uri(), tmp_path / "unused"))
    assert release.fingerprint.startswith("uri:") and release.source.startswith("file:")
    want = load_prepared(prepare_release(_settings(folder_release, tmp_path / "data")))
    assert release.ratings.count() == len(want.ratings)
    assert sorted(release.movies["movieId"]) == sorted(want.movies["movieId"])
    assert release.movies["year"].notna().any() and len(release.links) == len(want.links)
    assert not (tmp_path / "unused").exists()  # nothing converted for a URI


def test_a_uri_without_ratings_says_where_it_looked(spark, tmp_path):
    from engine.data.spark_release import open_release

    with pytest.raises(DataError, match=r"neither ratings\.parquet nor ratings\.csv"):
        open_release(spark, _settings((tmp_path / "nothing").as_uri(), tmp_path))


def test_a_uri_with_unreadable_rows_names_the_file(spark, tmp_path):
    from engine.data.spark_release import open_release

    files = generate_movielens(seed=12)
    files["ratings.csv"] = files["ratings.csv"].rstrip("\n") + "\n7,not-a-movie,4.0,964982703\n"
    folder = write_release(tmp_path / "bad", files, as_zip=False)
    with pytest.raises(DataError, match=r"ratings\.csv: some rows have an empty or non-numeric"):
        open_release(spark, _settings(folder.resolve().as_uri(), tmp_path))


def test_ratings_from_people_join_the_spark_read_ones(spark, small_data):
    from engine.recommender.training import ratings_frame

    extra = pd.DataFrame({"userId": [10_001, 10_001], "movieId": [1, 2], "rating": [4.5, 2.0]})
    both = ratings_frame(spark, small_data, extra)
    assert both.count() == len(small_data.ratings) + 2
    assert both.filter("userId = 10001").count() == 2


def test_the_ranking_sample_brings_only_its_users_rows(spark, small_data):
    from engine.recommender.training import ratings_frame, rows_of

    ratings = ratings_frame(spark, small_data)
    some = sorted(small_data.ratings["userId"].unique()[:3].tolist())
    rows = rows_of(ratings, some)
    assert sorted(rows["userId"].unique().tolist()) == some
    assert len(rows) == small_data.ratings["userId"].isin(some).sum()
    assert rows_of(ratings, []).empty  # no user to rank: nothing comes back, no error
