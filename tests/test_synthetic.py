"""bench/make_synthetic.py: a release in GroupLens's layout that the loader accepts, shaped like ml-25m."""

from __future__ import annotations

import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import make_synthetic  # noqa: E402


def test_synthetic_release_loads_and_has_ml25m_shape(tmp_path):
    from engine.data.movielens import load_movielens

    assert make_synthetic.main(["--ratings", "60000", "--out", str(tmp_path / "ml-synth")]) == 0
    data = load_movielens(tmp_path / "ml-synth")  # the loader's every check passes
    r = data.ratings
    assert len(r) == 60000 and not r.duplicated(["userId", "movieId"]).any()
    assert r.groupby("userId").size().min() >= make_synthetic.MIN_PER_USER
    share = r["rating"].value_counts(normalize=True).reindex(make_synthetic.STARS).to_numpy()
    np.testing.assert_allclose(share, make_synthetic.STAR_SHARE, atol=0.002)
    per_movie = r.groupby("movieId").size().sort_values(ascending=False)
    assert per_movie.iloc[: len(per_movie) // 10].sum() > 0.3 * len(r)  # long tail: top 10 % hold > 30 %
    released = data.movies.set_index("movieId")["year"].reindex(r["movieId"]).to_numpy()
    rated_year = (r["timestamp"] // (365.25 * 86400) + 1970).to_numpy()
    assert (rated_year >= released).all() and (rated_year <= 2019).all()
    again = make_synthetic.generate(60000)["ratings"]  # seeded: the same release every time
    assert again.equals(make_synthetic.generate(60000)["ratings"])
