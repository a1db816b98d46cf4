"""Spark LSH similar movies: recall@5 against the exact index on real data."""

from __future__ import annotations

import numpy as np
import pytest

from engine.recommender.lsh import LSHIndex, recall_at_k
from engine.recommender.model_tables import read_serving_tables
from engine.recommender.serving import RecommenderIndex

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]


def test_lsh_recall_at_5(spark, real_model):
    tables = read_serving_tables(real_model[1])
    index = RecommenderIndex.from_frames(**tables)
    lsh = LSHIndex(spark, tables["item_frame"], tables["movies"])
    # hashed once when built (cached), so a query only hashes its key: the app answers in < 1 s
    assert "hashes" in lsh.items.columns and lsh.items.is_cached and lsh.build_seconds > 0
    pool = index.item_ids[index.item_support >= 10]
    movies = [471, 454] + [int(m) for m in np.random.default_rng(3).choice(pool, 18, replace=False)]
    exact = {m: index.similar(m, 5)["movieId"].tolist() for m in movies}
    approx = {m: lsh.similar(m, 5)["movieId"].tolist() for m in movies}
    assert recall_at_k(exact, approx) >= 0.9
    found = lsh.similar(471, 5)
    np.testing.assert_allclose(
        found["score"], index.similar(471, 5).set_index("movieId").reindex(found["movieId"])["score"], atol=1e-3
    )
