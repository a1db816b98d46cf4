"""prepare-data: a release converted once to typed Parquet, bad data named by file and line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import generate_movielens, write_release
from engine.data.movielens import DataError, load_movielens
from engine.settings import get_settings


def _settings(release, data_dir):
    return dataclasses.replace(get_settings(), movielens_data=str(release), data_dir=data_dir)


@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "folder"])
def test_prepare_writes_typed_sorted_parquet_once(tmp_path, as_zip):
    from engine.data.prepare import load_prepared, parquet_release, prepare_release, read_manifest

    release = write_release(tmp_path / "release", generate_movielens(seed=4), as_zip=as_zip)
    settings = _settings(release, tmp_path / "data")
    assert parquet_release(settings) is None
    folder = prepare_release(settings)
    assert parquet_release(settings) == folder and folder.parent == tmp_path / "data" / "parquet"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left
    schema = pq.read_schema(folder / "ratings.parquet")
    assert {f.name: str(f.type) for f in schema} == {
        "userId": "int32",
        "movieId": "int32",
        "rating": "float",
        "timestamp": "int64",
    }
    ratings = pd.read_parquet(folder / "ratings.parquet")
    assert ratings["userId"].is_monotonic_increasing
    data = load_movielens(release)
    assert read_manifest(folder)["fingerprint"] == data.fingerprint  # models trained on either agree
    back = load_prepared(folder)
    key = ["userId", "movieId"]
    pd.testing.assert_frame_equal(
        back.ratings.sort_values(key).reset_index(drop=True),
        data.ratings.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(back.movies, data.movies, check_dtype=False)
    pd.testing.assert_frame_equal(back.tags, data.tags, check_dtype=False)
    # user_cells.npz: each rating of ratings.parquet (same order) as its movie's row and its year rated
    movies = pd.read_parquet(folder / "movies.parquet")
    with np.load(folder / "user_cells.npz") as cells:
        np.testing.assert_array_equal(movies["movieId"].to_numpy()[cells["movie"]], ratings["movieId"].to_numpy())
        years = pd.to_datetime(ratings["timestamp"], unit="s", utc=True).dt.year.to_numpy()
        np.testing.assert_array_equal(cells["year"].astype(np.int64) + int(cells["first_year"]), years)
        users = ratings["userId"].to_numpy()
        np.testing.assert_array_equal(cells["starts"], np.flatnonzero(np.r_[True, users[1:] != users[:-1]]))
    stamp = (folder / "ratings.parquet").stat().st_mtime_ns
    assert prepare_release(settings) == folder and (folder / "ratings.parquet").stat().st_mtime_ns == stamp


def _bad(files, name, line, text):
    head, *rows = files[name].split("\r\n")
    rows[line - 2] = text
    return {**files, name: "\r\n".join([head, *rows])}


@pytest.mark.parametrize(
    "change, message",
    [
        (("ratings.csv", 3, "1,2,7,1000000002"), r"ratings.csv, line 3: rating .*7.* half-star steps"),
        (("ratings.csv", 4, "1,x,4,1000000002"), r"ratings.csv, line 4: movieId is 'x', not a whole number"),
        (("ratings.csv", 5, "1,999,4,1000000002"), r"ratings.csv, line 5: movieId 999 is not in movies.csv"),
        (("ratings.csv", 6, "1,,4,1000000002"), r"ratings.csv, line 6: movieId is '', not a whole number"),
        (("ratings.csv", 2, "3000000000,1,4,1000000002"), r"ratings.csv, line 2: userId 3000000000 is outside"),
        (("movies.csv", 3, "1,Again (1999),Drama"), r"movies.csv, line 3: movieId 1 appears twice"),
    ],
)
def test_bad_data_is_named_by_file_and_line(tmp_path, change, message):
    from engine.data.prepare import parquet_release, prepare_release

    release = write_release(tmp_path / "release", _bad(generate_movielens(), *change))
    settings = _settings(release, tmp_path / "data")
    with pytest.raises(DataError, match=message):
        prepare_release(settings)
    assert parquet_release(settings) is None and not list((tmp_path / "data" / "parquet").iterdir())


def test_a_duplicate_rating_names_both_lines(tmp_path):
    from engine.data.prepare import prepare_release

    files = generate_movielens()
    first = files["ratings.csv"].split("\r\n")[1]
    release = write_release(tmp_path / "release", _bad(files, "ratings.csv", 9, first))
    with pytest.raises(DataError, match=r"lines 2 and 9: user 1 rated movie \d+ twice"):
        prepare_release(_settings(release, tmp_path / "data"))


def test_spaces_around_values_are_read_as_load_movielens_reads_them(tmp_path):
    """What the typed reader refuses but the line checks accept is converted the slow way, not refused."""
    from engine.data.prepare import load_prepared, prepare_release, read_manifest

    files = generate_movielens()
    first = files["ratings.csv"].split("\r\n")[1].split(",")
    release = write_release(
        tmp_path / "release", _bad(files, "ratings.csv", 2, ", ".join(first[:2]) + ", " + ",".join(first[2:]))
    )
    folder = prepare_release(_settings(release, tmp_path / "data"))
    data = load_movielens(release)
    assert read_manifest(folder)["fingerprint"] == data.fingerprint
    assert len(load_prepared(folder).ratings) == len(data.ratings)


def test_a_missing_release_and_a_uri_say_what_to_do(tmp_path):
    from engine.data.prepare import parquet_release, prepare_release

    with pytest.raises(DataError, match="not found"):
        prepare_release(_settings(tmp_path / "nope.zip", tmp_path / "data"))
    uri = _settings("s3a://bucket/ml-25m", tmp_path / "data")
    assert parquet_release(uri) is None
    with pytest.raises(DataError, match="Spark reads this URI directly"):
        prepare_release(uri)


@pytest.mark.spark
def test_spark_reads_the_parquet_as_the_csv(spark, tmp_path):
    """read_spark_parquet gives Spark the CSV path's columns: the Spark statistics agree with pandas."""
    from engine.data.prepare import prepare_release, read_spark_parquet
    from engine.data.stats import compute_stats
    from engine.data.stats_spark import compute_stats_spark

    release = write_release(tmp_path / "release", generate_movielens(seed=2))
    tables = read_spark_parquet(spark, prepare_release(_settings(release, tmp_path / "data")))
    assert [t.columns for t in tables] == [
        ["userId", "movieId", "rating", "timestamp"],
        ["movieId", "title", "genres"],
        ["userId", "movieId", "tag", "timestamp"],
    ]
    a, b = compute_stats(load_movielens(release)), compute_stats_spark(spark, *tables)
    assert a.counts == b.counts
    pd.testing.assert_frame_equal(a.genres, b.genres, check_exact=False, atol=1e-4)
    assert np.array_equal(a.ratings_per_user.to_numpy(), b.ratings_per_user.to_numpy())


def test_the_cli_prepares_once(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO, cli_env

    release = write_release(tmp_path / "release", generate_movielens())
    env = cli_env(MOVIELENS_DATA=release, ENGINE_DATA_DIR=tmp_path / "data")
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "engine", *a], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    first = run("prepare-data", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["ratings"] == len(load_movielens(release).ratings) and "writing Parquet" in first.stderr
    again = run("prepare-data", "--json")
    assert json.loads(again.stdout)["path"] == out["path"] and "writing" not in again.stderr


def test_the_statistics_page_reads_the_parquet_once_prepared(monkeypatch, tmp_path):
    """With the release prepared, the page's numbers come from DuckDB over the Parquet (a spy counts
    the calls) and are the pandas path's numbers, for everything and for a slice."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from conftest import REPO
    from engine.data.prepare import prepare_release
    from engine.data.stats import Slice, compute_stats
    from engine.data.stats_columnar import ColumnarRelease

    release = write_release(tmp_path / "release", generate_movielens(seed=5))
    for name, value in (
        ("MOVIELENS_DATA", release),
        ("ENGINE_DATA_DIR", tmp_path / "data"),
        ("MODEL_DIR", tmp_path / "models"),
        ("RATINGS_DB", tmp_path / "ratings.sqlite"),
        ("SPARK_START", "on-demand"),
    ):
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(REPO)
    prepare_release(get_settings())
    calls = []
    real = ColumnarRelease.stats
    monkeypatch.setattr(ColumnarRelease, "stats", lambda self, part=None: calls.append(part) or real(self, part))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/statistics.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    data = load_movielens(release)
    metrics = lambda: {m.label: m.value for m in at.metric}
    assert metrics()["Ratings"] == f"{len(data.ratings):,}" and calls, calls
    at.sidebar.multiselect(key="slice_genres").set_value(["Comedy"])
    at.sidebar.button(key="slice_apply").click().run()
    want = compute_stats(data, part=Slice(genres=("Comedy",))).counts
    assert metrics()["Ratings"] == f"{want['ratings']:,}" and metrics()["Users"] == f"{want['users']:,}"
    assert Slice(genres=("Comedy",)) in calls
    st.cache_data.clear()
    st.cache_resource.clear()
