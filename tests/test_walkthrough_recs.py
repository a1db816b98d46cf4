"""The recommendations page's defects from the walk-through (issue 24): each test failed before its fix."""

from __future__ import annotations

import collections
import json
import logging

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.recommender.serving import PICK_MIN_PREDICTED, RecommenderIndex
from test_app import APP, app_env, as_shown, no_exception, open_page  # noqa: F401 (app_env is a fixture)

PAGE = "pages/recommendations.py"


def _link(**params) -> AppTest:
    """A fresh session opened at the recommendations page's address with ``params`` (a bookmark, a reload)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.switch_page(PAGE)
    return at.run()


def _new_user(at: AppTest) -> AppTest:
    return at.segmented_control(key="rec_mode").set_value("Me (new user)").run()


def test_a_failed_import_clears_the_last_reports(app_env):
    """Item 4: after a good import, a failed one shows its error alone (the green report goes)."""
    at = _new_user(open_page(PAGE))
    good = b"Const,Your Rating,Title,Year\ntt0100000,10,Movie 1,1980\n"
    at.get("file_uploader")[0].set_value(("imdb.csv", good, "text/csv")).run()
    at.button(key="ratings_import").click().run()
    assert at.success and "1 added" in at.success[0].value
    bad = b"Const,Your Rating\ntt0100001,eleven\n"
    at.get("file_uploader")[0].set_value(("bad.csv", bad, "text/csv")).run()
    at.button(key="ratings_import").click().run()
    no_exception(at)
    assert [e.value for e in at.error] == [
        "Importing bad.csv failed: bad.csv, line 2: the rating 'eleven' is not a number."
    ]
    assert not at.success
    at.run()
    assert not at.success and not at.error


def test_the_address_keeps_the_profile_and_the_mode(app_env):
    """Item 5: new-user mode puts ?profile= in the address, so a reload (a new session at that address)
    comes back to it; Movie night is ?mode=movie-night; a bad name from a link is named and ignored."""
    at = _new_user(open_page(PAGE))
    assert at.query_params["profile"] == "guest" and "user" not in at.query_params
    at.text_input(key="profile").set_value("alice").run()
    assert at.query_params["profile"] == "alice"
    again = _link(**{k: v for k, v in at.query_params.items()})  # the reload
    no_exception(again)
    assert again.segmented_control(key="rec_mode").value == "Me (new user)"
    assert again.text_input(key="profile").value == "alice" and not again.warning
    again.segmented_control(key="rec_mode").set_value("Movie night").run()
    assert again.query_params["mode"] == "movie-night" and "profile" not in again.query_params
    night = _link(mode="movie-night")
    assert night.segmented_control(key="rec_mode").value == "Movie night"
    for bad, why in (
        ("x" * 61, "longer than 60 characters"),
        ("al\x00ice", "control or invisible"),
        ("  ", "it is empty"),
    ):
        page = _link(profile=bad)
        no_exception(page)
        assert page.segmented_control(key="rec_mode").value == "Me (new user)"
        assert page.text_input(key="profile").value == "guest"
        assert why in page.warning[0].value and "cannot be used" in page.warning[0].value
        assert page.query_params["profile"] == "guest"  # the bad name leaves the address
    # a name is text: markdown and HTML in it stay literal in the warning and the subheaders
    odd = _link(profile="**bold** <b>x</b> [a](http://e.com)")
    assert odd.text_input(key="profile").value == "**bold** <b>x</b> [a](http://e.com)" and not odd.warning


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_links_set_widgets_without_the_session_state_warning(app_env, monkeypatch):
    """Item 11: following ?user= (and ?profile=) links logged 'The widget with key "rec_mode" was created
    with a default value but also had its value set via the Session State API'."""
    from streamlit.elements.lib import policies

    monkeypatch.setattr(policies, "_shown_default_value_warning", False)  # Streamlit says it once a process
    records = _Records()
    policies._LOGGER.addHandler(records)
    try:
        for link in ({"user": "7"}, {"profile": "alice"}, {"mode": "movie-night"}):
            no_exception(_link(**link))
            monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    finally:
        policies._LOGGER.removeHandler(records)
    assert not [m for m in records.messages if "created with a default value" in m], records.messages


def test_new_user_list_leaves_out_the_quick_start_grid(app_env):
    """Item 8: the list below the grid of most-watched movies does not repeat them."""
    at = _new_user(open_page(PAGE))
    at.sidebar.slider(key="rec_min").set_value(0).run()
    tile = next(f.key for f in at.get("feedback") if f.key.startswith("quick_"))
    at.feedback(key=tile).set_value(4).run()
    index = RecommenderIndex.load(app_env[1])
    grid = [int(f.key.removeprefix("quick_")) for f in at.get("feedback") if f.key.startswith("quick_")]
    shown = set(at.dataframe[0].value["title"])
    titles = dict(zip(index.movies["movieId"].astype(int), index.movies["title"]))
    from engine.data.movielens import readable_title

    assert len(shown) == 10 and not shown & {readable_title(titles[m], with_year=False) for m in grid}
    assert any("left out of this list" in c.value for c in at.caption)


def test_sidebar_and_table_fit_the_page(app_env):
    """Impressions: 'All genres' as on the statistics page; no Order in Movie night; the list's secondary
    columns start hidden (a row's detail and the column menu show them) so it fits 1,280 px."""
    at = open_page(PAGE)
    assert at.sidebar.multiselect(key="rec_genres").proto.placeholder == "All genres"
    columns = json.loads(at.dataframe[0].proto.columns)
    assert all(columns[c].get("hidden") for c in ("genres", "n_ratings", "similar", "IMDb", "TMDB"))
    assert not any(columns[c].get("hidden") for c in ("title", "year", "predicted_rating", "because"))
    assert {"IMDb", "genres"} <= set(at.dataframe[0].value.columns)  # still there to show
    assert [r.key for r in at.sidebar.radio] == ["rec_order"]
    at.segmented_control(key="rec_mode").set_value("Movie night").run()
    assert not at.sidebar.radio


@pytest.fixture()
def real_app(monkeypatch, real_model, movielens_zip, tmp_path):
    """The app on the default model trained on ml-latest-small (the test run's real_model)."""
    monkeypatch.setenv("MOVIELENS_DATA", str(movielens_zip))
    monkeypatch.setenv("MODEL_DIR", str(real_model[0]))
    monkeypatch.setenv("RATINGS_DB", str(tmp_path / "ratings.sqlite"))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return real_model


@pytest.mark.integration
@pytest.mark.slow
def test_user_232_on_the_real_data(real_app, real_data):
    """Items 6 and 9, and the active user button: top picks hold back what the model expects a user to
    dislike and say so; the caption counts the 4 ratings the model lacks for user 232.

    (User 232's picks held back Wild Wild West, 2.37, until the top picks learnt from dislikes on
    2026-12-03: it no longer reaches their list. The first users whose lists hold something back now
    are checked instead.)"""
    at = _link(user="232")
    no_exception(at)
    assert at.button(key="rec_quick_232").proto.type == "primary"
    assert at.button(key="rec_quick_575").proto.type == "secondary"
    index = RecommenderIndex.load(real_app[1])
    recs = index.recommend(232, 10, min_ratings=20, order="picks")
    assert (recs["predicted_rating"] >= PICK_MIN_PREDICTED).all()
    captions = [c.value for c in at.caption if "held back" in c.value]
    assert len(captions) == (1 if recs.attrs["held_back"] else 0)  # said exactly when something was held back
    checked = 0
    for user in index.user_ids[:100]:
        held = index.recommend(int(user), 10, min_ratings=20, order="picks").attrs["held_back"]
        if not held:
            continue
        page = _link(user=str(int(user)))
        no_exception(page)
        caption = next(c.value for c in page.caption if "held back" in c.value)
        assert caption.startswith(f"{len(held)} movie") and f"below {PICK_MIN_PREDICTED:g} ⭐" in caption
        assert f"({held[0][2]:.2f} ⭐)" in caption, (user, held, caption)
        shown = page.dataframe[0].value["title"].tolist()
        assert shown == as_shown(index.recommend(int(user), 10, min_ratings=20, order="picks")["title"])
        assert as_shown([t for _, t, _ in held])[0] not in shown
        checked += 1
        if checked == 2:
            break
    assert checked == 2, "no user's top picks held anything back"
    everything = int((real_data.ratings["userId"] == 232).sum())
    profile = index.user_profile(232)
    assert everything == 862 and profile["ratings"] + profile["not_in_model"] == everything
    assert any(
        f"{profile['not_in_model']} more ratings are of movies the model has not learned (862 in the data)" in c.value
        for c in at.caption
    ), [c.value for c in at.caption]
    at.button(key="rec_quick_575").click().run()
    assert at.button(key="rec_quick_575").proto.type == "primary"
    assert at.selectbox(key="rec_user").value == 575


@pytest.mark.integration
@pytest.mark.slow
def test_because_explains_each_pick_on_the_real_data(real_model):
    """Item 7: user 575's five picks do not all cite the same movies, and no cited movie is one the user
    disliked (below 3 stars or below their own mean, 4 stars always counting as liked); over 60 users,
    almost no one sees one title on all five rows (before: a quarter of them)."""
    index = RecommenderIndex.load(real_model[1])

    def check(user):
        history = index.user_history(user)
        stars = dict(zip(history["title"], history["rating"]))
        liked_from = max(3.0, min(4.0, history["rating"].mean()))
        because = index.recommend(user, 5, min_ratings=20, order="picks")["because"].tolist()
        assert all(stars[t] >= liked_from for reasons in because for t in reasons), (user, because)
        assert sum(map(len, because)) >= 5
        return because

    because = check(575)  # before: Pulp Fiction, The Matrix (and Stand by Me) on all five rows
    counts = collections.Counter(t for reasons in because for t in reasons)
    assert max(counts.values()) < 5 and len({tuple(r) for r in because}) >= 4, because
    assert len({r[0] for r in because}) >= 3, because
    users = [int(u) for u in np.random.default_rng(0).choice(index.user_ids, 60, replace=False)]
    on_every_row = 0
    for user in users:
        counts = collections.Counter(t for reasons in check(user) for t in reasons)
        on_every_row += max(counts.values(), default=0) == 5
    assert on_every_row == 0, on_every_row  # before: 15 of 62 users


@pytest.mark.integration
@pytest.mark.slow
def test_new_user_list_overlap_with_the_grid_on_the_real_data(real_model):
    """Item 8, measured: people who rated 3-5 of the most-watched movies (their own ratings of them) got
    lists of which 4-5 of 10 were on the grid in front of them; now none, and no fewer of their own
    other 4-star movies."""
    index = RecommenderIndex.load(real_model[1])
    popular = index.popular_to_rate([], 30)["movieId"].tolist()
    overlap, hits = {"before": [], "after": []}, {"before": [], "after": []}
    for user in np.random.default_rng(0).choice(index.user_ids, 80, replace=False):
        history = index.user_history(int(user))
        stars = dict(zip(history["movieId"].astype(int), history["rating"]))
        mine = [(m, stars[m]) for m in popular if m in stars][:5]
        if len(mine) < 3:
            continue
        grid = index.popular_to_rate([m for m, _ in mine], 9)["movieId"].tolist()
        liked = {m for m, r in stars.items() if r >= 4} - {m for m, _ in mine}
        for when, skip in (("before", ()), ("after", grid)):
            recs = set(
                index.recommend_new_user(mine, 10, min_ratings=20, order="picks", skip=skip, explain=False)["movieId"]
            )
            overlap[when].append(len(recs & set(grid)))
            hits[when].append(len(recs & liked))
    assert len(overlap["after"]) >= 40
    assert np.mean(overlap["before"]) >= 3 and max(overlap["after"]) == 0
    assert np.mean(hits["after"]) >= np.mean(hits["before"]) - 0.2
