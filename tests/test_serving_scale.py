"""Serving at ml-32m size: each user's rated movies in compact arrays (CSR), not a frame of all ratings.

Small generated models (no Spark): the arrays must give exactly what the frame gave.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.recommender.model_store import current_model_dir, save_model
from engine.recommender.serving import RecommenderIndex

RANK = 4


def _tables(seed: int = 0, n_users: int = 300, n_movies: int = 500) -> dict:
    """A model's tables: the model lacks some users and movies that have ratings (as when all of
    someone's ratings fell in the test split), and the ratings come in no particular order."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(1, 60, n_users)
    users = np.repeat(np.arange(1, n_users + 1) * 3, per_user)  # sparse-ish ids
    movies = np.concatenate([rng.choice(np.arange(1, n_movies + 1) * 7, k, replace=False) for k in per_user])
    ratings = pd.DataFrame({"userId": users, "movieId": movies, "rating": rng.integers(1, 11, len(users)) / 2}).sample(
        frac=1.0, random_state=seed
    )
    ratings = ratings.reset_index(drop=True)
    model_users = np.setdiff1d(np.unique(users), rng.choice(np.unique(users), 10, replace=False))
    model_movies = np.setdiff1d(np.unique(movies), rng.choice(np.unique(movies), 40, replace=False))
    fcols = [f"f{i}" for i in range(RANK)]
    uf = pd.DataFrame(rng.normal(0, 0.3, (len(model_users), RANK)), columns=fcols)
    uf.insert(0, "userId", model_users)
    uf.insert(1, "user_bias", rng.normal(0, 0.3, len(model_users)))
    itf = pd.DataFrame(rng.normal(0, 0.3, (len(model_movies), RANK)), columns=fcols)
    itf.insert(0, "movieId", model_movies)
    itf.insert(1, "item_bias", rng.normal(0, 0.3, len(model_movies)))
    itf.insert(
        2, "n_ratings", ratings["movieId"].value_counts().reindex(model_movies).fillna(0).astype(np.int64).to_numpy()
    )
    catalogue = pd.DataFrame(
        {
            "movieId": np.arange(1, n_movies + 1) * 7,
            "title": [f"Movie {m} ({1990 + m % 30})" for m in range(1, n_movies + 1)],
            "genres": np.array(["Drama", "Comedy|Drama", "Action"])[np.arange(n_movies) % 3],
            "year": 1990.0 + np.arange(1, n_movies + 1) % 30,
            "imdbId": "0000001",
            "tmdbId": np.nan,
            "total_ratings": 0,
            "mean_rating": np.nan,
        }
    )
    return {"user_factors": uf, "item_factors": itf, "movies": catalogue, "ratings": ratings}


def _index(tables: dict) -> RecommenderIndex:
    return RecommenderIndex.from_frames(
        mu=3.5,
        reg_param=0.1,
        user_bias_reg=5.0,
        user_frame=tables["user_factors"],
        item_frame=tables["item_factors"],
        movies=tables["movies"],
        ratings=tables["ratings"],
    )


def _frame_rows(index: RecommenderIndex, ratings: pd.DataFrame) -> dict:
    """Each user's (movie positions, ratings) as the frame-based index made them: the rows of movies
    with factors, grouped by user in the frame's order."""
    item_pos = {int(m): i for i, m in enumerate(index.item_ids)}
    known = ratings[ratings["movieId"].isin(item_pos)]
    pos = known["movieId"].map(item_pos).to_numpy()
    return {int(u): (pos[idx], known["rating"].to_numpy()[idx]) for u, idx in known.groupby("userId").indices.items()}


def _assert_rows_equal(index: RecommenderIndex, ratings: pd.DataFrame) -> None:
    expected = _frame_rows(index, ratings)
    for u, user in enumerate(index.user_ids):
        pos, values = index.rated.row(u)
        want_pos, want_values = expected.get(int(user), (np.array([], int), np.array([])))
        np.testing.assert_array_equal(pos, want_pos, err_msg=f"user {user}")
        np.testing.assert_array_equal(values, want_values, err_msg=f"user {user}")
        everything = int((ratings["userId"] == user).sum())
        assert index.user_profile(int(user))["not_in_model"] == everything - len(want_pos)


def test_csr_rows_equal_the_frame_based_ones_for_every_user():
    tables = _tables()
    index = _index(tables)
    _assert_rows_equal(index, tables["ratings"])
    rated = index.rated
    assert rated.indptr.dtype == np.int64 and rated.items.dtype == np.int32 and rated.values.dtype == np.float32
    assert len(rated.indptr) == len(index.user_ids) + 1 and rated.indptr[-1] == len(rated.items)
    # exclusion: a user's list leaves out exactly what they rated of the movies the model knows
    for user in index.user_ids[:20]:
        everything = set(index.recommend(int(user), len(index.item_ids), explain=False)["movieId"])
        rated_ids = set(index.item_ids[_frame_rows(index, tables["ratings"]).get(int(user), ([],))[0]])
        assert everything == set(index.item_ids) - rated_ids
    # every rating is still there, for the rare reader of the whole table
    key = ["userId", "movieId"]
    pd.testing.assert_frame_equal(
        index.ratings.sort_values(key, ignore_index=True), tables["ratings"].sort_values(key, ignore_index=True)
    )


def test_saved_ratings_are_compact_sorted_and_old_tables_still_load(tmp_path):
    """The saved table is sorted by user (each user's ratings in their order) in int32/float32; a
    table saved before (unsorted int64/float64) loads to the same rows."""
    tables = _tables(seed=1)
    params = {"rank": RANK, "mu": 3.5, "reg_param": 0.1, "user_bias_reg": 5.0}
    folder = save_model(tmp_path, params=params, metrics={}, tables=tables)
    saved = pd.read_parquet(folder / "ratings.parquet")
    assert saved.dtypes.astype(str).tolist() == ["int32", "int32", "float32"]
    assert saved["userId"].is_monotonic_increasing and len(saved) == len(tables["ratings"])
    index = RecommenderIndex.load(current_model_dir(tmp_path))
    _assert_rows_equal(index, tables["ratings"])
    tables["ratings"].to_parquet(folder / "ratings.parquet", index=False)  # as older versions saved it
    old = RecommenderIndex.load(folder)
    _assert_rows_equal(old, tables["ratings"])
    for user in old.user_ids[:10]:
        pd.testing.assert_frame_equal(
            old.user_history(int(user)).astype({"rating": np.float32}), index.user_history(int(user))
        )


def test_the_index_keeps_no_frame_of_all_ratings(tmp_path):
    """After load, nothing in the index grows with the ratings but the CSR's three arrays (and the
    per-user counts): no pandas frame, no dict of per-user arrays, no object arrays."""
    tables = _tables(seed=2, n_users=600)
    n = len(tables["ratings"])
    save_model(
        tmp_path, params={"rank": RANK, "mu": 3.5, "reg_param": 0.1, "user_bias_reg": 5.0}, metrics={}, tables=tables
    )
    index = RecommenderIndex.load(current_model_dir(tmp_path))
    big = {}
    for name, value in vars(index).items():
        size = len(value) if isinstance(value, (pd.DataFrame, pd.Series, dict, list, np.ndarray)) else 0
        if size > len(index.movies) + len(index.user_ids) + 1:
            big[name] = type(value).__name__
    assert big == {}, f"attributes as long as the ratings: {big}"
    rated = vars(index.rated)
    assert {k for k, v in rated.items() if isinstance(v, np.ndarray) and len(v) == n - len(index.rated.others)} == {
        "items",
        "values",
    }
    assert len(index.rated.others) < n / 5  # only the ratings the model cannot serve
    assert index.rated.nbytes < 10 * n + 8 * len(index.user_ids) + index.rated.others.memory_usage(deep=True).sum()
    assert index._ratings is None  # the whole-table frame is made only when asked for


@pytest.mark.parametrize("ids", [np.array([5, 9, 10, 11, 400]), np.array([5, 9, 2**40, 2**41])])
@pytest.mark.parametrize(
    "query",
    [
        np.array([9, 5, 6, -1, 2**41, 400, 11, 2**40, 0]),  # some ids far off: looked up inside [5, 400] only
        np.array([9, 5, 6, -1, 400, 11, 0, -3000, 5000, 401]),  # all near: one table spans them
        np.array([400, 400, 5], dtype=np.int32),
    ],
)
def test_id_positions_dense_and_sparse_ids(ids, query):
    """Positions by lookup table (ids close together) or binary search (far apart) agree."""
    from engine.recommender.serving import id_positions

    expected = [list(ids).index(q) if q in ids else -1 for q in query]
    assert id_positions(ids, query).tolist() == expected


def test_float32_scans_give_the_lists_of_float64_scans():
    """Whole-catalogue scans read float32 copies of the factors; the candidates are rescored in float64.
    Lists and shown scores must equal those of float64 scans, also with exact ties (movies with the
    same factors) and near-ties (factors 1e-7 apart, below float32's resolution)."""
    rng = np.random.default_rng(5)
    tables = _tables(seed=3, n_users=200, n_movies=3000)
    rank, k = 50, 32
    for name, width in (("user_factors", rank), ("item_factors", rank)):
        frame = tables[name]
        ids = [c for c in frame.columns if not c.startswith("f")]
        tables[name] = pd.concat(
            [
                frame[ids],
                pd.DataFrame(rng.normal(0, 0.3, (len(frame), width)), columns=[f"f{i}" for i in range(width)]),
            ],
            axis=1,
        )
    items = tables["item_factors"]
    fcols = [f"f{i}" for i in range(rank)]
    items.loc[1:40:2, fcols] = items.loc[0:39:2, fcols].to_numpy()  # exact ties
    items.loc[41:80:2, fcols] = items.loc[40:79:2, fcols].to_numpy() + 1e-7  # near-ties
    items.loc[1:80:2, "item_bias"] = items.loc[0:79:2, "item_bias"].to_numpy()
    picks_u = pd.DataFrame(rng.random((len(tables["user_factors"]), k)), columns=[f"f{i}" for i in range(k)])
    picks_u.insert(0, "userId", tables["user_factors"]["userId"].to_numpy())
    picks_i = pd.DataFrame(rng.random((len(items), k)) * 0.1, columns=[f"f{i}" for i in range(k)])
    picks_i.insert(0, "movieId", items["movieId"].to_numpy())
    index = RecommenderIndex.from_frames(
        mu=3.5,
        reg_param=0.1,
        user_bias_reg=5.0,
        user_frame=tables["user_factors"],
        item_frame=items,
        movies=tables["movies"],
        ratings=tables["ratings"],
        pick_user_frame=picks_u,
        pick_item_frame=picks_i,
        pick_params={"alpha": 0.5, "reg_param": 0.1},
    )
    assert index._scan_items.dtype == np.float32 and index._scan_picks.dtype == np.float32
    exact = RecommenderIndex(
        **{f: getattr(index, f) for f in ("mu", "reg_param", "user_bias_reg")},
        **{
            f: getattr(index, f)
            for f in (
                "user_ids",
                "user_factors",
                "user_bias",
                "item_ids",
                "item_factors",
                "item_bias",
                "item_support",
                "movies",
                "rated",
                "pick_user_factors",
                "pick_item_factors",
                "pick_alpha",
                "pick_reg",
            )
        },
    )
    exact._scan_items, exact._scan_unit, exact._scan_picks = (
        exact.item_factors,
        exact._unit_items,
        exact.pick_item_factors,
    )
    some_movies = [int(m) for m in index.item_ids[:90]]
    for u in index.user_ids[:60]:
        for order in ("rating", "picks"):
            a, b = index.recommend(int(u), 10, order=order), exact.recommend(int(u), 10, order=order)
            pd.testing.assert_frame_equal(a, b)
            assert a.attrs == b.attrs
    for m in some_movies:
        pd.testing.assert_frame_equal(index.similar(m, 10, min_ratings=0), exact.similar(m, 10, min_ratings=0))
    mine = [(m, float(r)) for m, r in zip(some_movies[:15], rng.integers(1, 11, 15) / 2)]
    for order in ("rating", "picks"):
        pd.testing.assert_frame_equal(
            index.recommend_new_user(mine, 10, order=order), exact.recommend_new_user(mine, 10, order=order)
        )
    # the scans' own scores are within float32's error of float64's
    u = 0
    np.testing.assert_allclose(
        index.raw_scores(index.user_factors[u], index.user_bias[u]),
        index.exact_scores(index.user_factors[u], index.user_bias[u], np.arange(len(index.item_ids))),
        atol=1e-5,
    )


# ---------------------------------------------------------------------- background loads (the app's preload)
def test_index_loads_share_one_load_per_model_and_retry_a_failed_one(tmp_path):
    """Eight sessions asking at once get one index from one load; a broken folder raises the
    model's message and is tried again once fixed; a newer version (stamp) is a new load, and only
    the newest ``keep`` loads are held."""
    import threading

    from engine.preload import BackgroundLoads
    from engine.recommender.model_store import ModelError

    params = {"rank": RANK, "mu": 3.5, "reg_param": 0.1, "user_bias_reg": 5.0}
    folder = str(save_model(tmp_path, params=params, metrics={}, tables=_tables(seed=3)))
    calls, gate = [], threading.Event()

    def load(path):
        calls.append(path)
        gate.wait(30)  # every session asks while the load is running
        return RecommenderIndex.load(path)

    loads = BackgroundLoads(load, keep=2)
    loads.start(folder, 1.0)
    assert not loads.ready(folder, 1.0)
    got = []
    sessions = [threading.Thread(target=lambda: got.append(loads.get(folder, 1.0))) for _ in range(8)]
    for t in sessions:
        t.start()
    gate.set()
    for t in sessions:
        t.join(60)
    assert len(got) == 8 and all(index is got[0] for index in got) and calls == [folder]
    assert loads.ready(folder, 1.0) and loads.get(folder, 1.0) is got[0]
    _assert_rows_equal(got[0], _tables(seed=3)["ratings"])

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "params.json").write_text('{"format": 1, "rank": 4}')
    with pytest.raises(ModelError, match="user_factors.parquet is missing"):
        loads.get(str(broken), 1.0)
    assert not loads.ready(str(broken), 1.0)
    for name in ("params.json", "user_factors.parquet", "item_factors.parquet", "movies.parquet", "ratings.parquet"):
        (broken / name).write_bytes((tmp_path / folder / name).read_bytes())
    assert loads.get(str(broken), 1.0).rank == RANK  # the failed load was tried again, not kept
    assert loads.get(folder, 2.0) is not got[0]  # a new version of the folder: a new load
    assert len(loads._loads) == 2 and (folder, 1.0) not in loads._loads  # the oldest went
