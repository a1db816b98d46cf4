"""Every page through Streamlit's AppTest, including the error paths."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from engine.data.movielens import load_movielens, readable_title
from engine.data.stats import compute_stats, summarize
from engine.recommender.serving import RecommenderIndex

APP = str(REPO / "streamlit_app.py")
PAGES = [
    "pages/home.py",
    "pages/statistics.py",
    "pages/recommendations.py",
    "pages/similar.py",
    "pages/model.py",
    "pages/emotion.py",
]


@pytest.fixture()
def app_env(monkeypatch, small_release, small_model, tmp_path):
    monkeypatch.setenv("MOVIELENS_DATA", str(small_release))
    monkeypatch.setenv("MODEL_DIR", str(small_model[0]))
    monkeypatch.setenv("RATINGS_DB", str(tmp_path / "ratings.sqlite"))
    monkeypatch.chdir(REPO)
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return small_model


def open_page(page: str, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page != "pages/home.py":
        at.switch_page(page)
        at.run()
    return at


def similar_page(movie: int) -> AppTest:
    """The similar-movies page on ``movie``, with no minimum of ratings."""
    at = open_page("pages/similar.py")
    at.slider(key="sim_min").set_value(0).run()
    at.selectbox(key="sim_movie").set_value(movie).run()
    return at


def as_shown(titles) -> list[str]:
    """Engine titles as the app's tables show them beside a Year column ("The Movie 5")."""
    return [readable_title(t, with_year=False) for t in titles]


def no_exception(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page):
    at = open_page(page)
    no_exception(at)
    assert at.title and not at.error, [e.value for e in at.error]


def test_first_page_view_opens_the_index_the_prepared_release_and_the_emotion_model(app_env, monkeypatch, tmp_path):
    """The first page view (any page) starts the model's index load, the release's open and the
    emotion networks' load on background threads; the statistics and webcam pages then use those,
    not second ones."""
    from engine.data.prepare import parquet_release, prepare_release
    from engine.emotion import lite
    from engine.recommender.model_store import current_model_dir
    from engine.settings import get_settings
    from pages import _common

    shipped = get_settings().data_dir / lite.CACHE_DIR  # converted by `make test` (as by `make run`)
    if shipped.is_dir():  # caching conversions is tests/test_emotion.py's; here: no conversion to wait for
        shutil.copytree(shipped, tmp_path / "data" / lite.CACHE_DIR)
    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMOTION_LOAD", "background")  # as `make run` (tests/conftest.py: on-demand)
    prepare_release(get_settings(), progress=lambda message: None)
    prepared = str(parquet_release(get_settings()))
    open_page("pages/home.py")  # the home page reads none of them
    model = current_model_dir(app_env[0])
    columnar, index, networks = _common.columnar_loads(), _common.index_loads(), _common.recognizer_loads()
    assert [key[0] for key in columnar._loads] == [prepared] and [key[0] for key in index._loads] == [str(model)]
    assert [key[0] for key in networks._loads] == [str(get_settings().emotion_model_dir)]
    release = columnar.get(prepared, _common._manifest_stamp(prepared))
    assert release._whole is not None and release.stats() is release._whole  # computed in the background
    assert release._ratings is not None  # read in the background too (a first slice by genre needs them)
    at = open_page("pages/statistics.py")
    no_exception(at)
    assert _common.columnar_for(prepared) is release and len(columnar._loads) == 1
    assert at.metric[0].label == "Users"
    recognizer = networks.get(*_common._recognizer_key(get_settings()))
    at = open_page("pages/emotion.py")
    no_exception(at)
    assert _common.load_recognizer() is recognizer and len(networks._loads) == 1


def test_home_shows_model_metrics(app_env):
    at = open_page("pages/home.py")
    labels = [m.label for m in at.metric]
    assert "Test RMSE" in labels and "Plain ALS RMSE" in labels and "Top picks NDCG@10" in labels


def test_recommendations_for_a_user(app_env):
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.selectbox(key="rec_user").set_value(5).run()
    no_exception(at)
    df = at.dataframe[0].value
    assert len(df) == 10 and {"title", "predicted_rating", "because", "IMDb"} <= set(df.columns)
    at.sidebar.slider(key="rec_n").set_value(3).run()
    assert len(at.dataframe[0].value) == 3


def test_recommendation_order_switch(app_env):
    """Top picks by default; the sidebar switches to the predicted-rating order."""
    index = RecommenderIndex.load(app_env[1])
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.selectbox(key="rec_user").set_value(5).run()
    assert at.sidebar.radio(key="rec_order").value == "picks"
    picks = at.dataframe[0].value["title"].tolist()
    shown = as_shown(index.recommend(5, 10, order="picks")["title"])
    assert picks == shown
    at.sidebar.radio(key="rec_order").set_value("rating").run()
    no_exception(at)
    by_rating = at.dataframe[0].value["title"].tolist()
    shown = as_shown(index.recommend(5, 10)["title"])
    assert by_rating == shown and by_rating != picks


def test_new_user_mode_persists(app_env):
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    for query in ("Movie 1,", "Movie 2,", "Movie 3,"):
        at.text_input(key="rate_query").set_value(query).run()
        at.feedback(key="rate_stars").set_value(4).run()
        at.button(key="rate_save").click().run()
        no_exception(at)
    from engine.people.user_ratings import RatingStore

    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert len(store.ratings("guest")) == 3
    # a new session (a reload) sees the saved ratings and gets recommendations
    again = open_page("pages/recommendations.py")
    again.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    assert any("Your ratings (3)" in s.value for s in again.subheader)
    assert len(again.dataframe[0].value) > 0


def test_new_user_rates_the_most_watched_movies_in_one_click(app_env):
    """The quick-start grid: the most-rated unrated movies; one click saves, the next movie moves up."""
    from engine.people.user_ratings import RatingStore

    index = RecommenderIndex.load(app_env[1])
    at = open_page("pages/recommendations.py")
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    no_exception(at)

    def tiles(page):
        return [int(f.key.removeprefix("quick_")) for f in page.get("feedback") if f.key.startswith("quick_")]

    first = index.popular_to_rate([], 9)["movieId"].tolist()
    assert tiles(at) == first
    at.feedback(key=f"quick_{first[0]}").set_value(3).run()  # the fourth star
    no_exception(at)
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert store.ratings("guest") == [(first[0], 4.0)]
    assert tiles(at) == index.popular_to_rate([first[0]], 9)["movieId"].tolist() == first[1:] + tiles(at)[-1:]
    assert any("Your ratings (1)" in s.value for s in at.subheader)
    assert len(at.dataframe[0].value) > 0  # recommendations from one rating
    at.button(key="quick_other").click().run()
    assert tiles(at) == index.popular_to_rate([first[0]], 9, offset=9)["movieId"].tolist()
    # another profile starts from the most-watched again
    at.text_input(key="profile").set_value("someone else").run()
    assert any("Your ratings (0)" in s.value for s in at.subheader)
    assert tiles(at) == first


def test_new_user_rates_a_recommendation_in_place_and_sees_newest_ratings_first(app_env):
    """ "Seen it": a movie picked from the list is rated there and leaves it; a long list of ratings
    shows the newest eight until asked for all."""
    from engine.people.user_ratings import RatingStore

    index = RecommenderIndex.load(app_env[1])
    ten = [int(m) for m in index.popular_to_rate([], 10)["movieId"]]
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        store.import_ratings("guest", [(m, 4.0 if k % 2 else 2.5) for k, m in enumerate(ten)])
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    sliders = [s.key for s in at.get("select_slider") if s.key and s.key.startswith("edit_")]
    assert sliders == [f"edit_{m}" for m in ten[::-1][:8]]  # newest first, eight of ten
    at.toggle(key="ratings_all").set_value(True).run()
    assert len([s for s in at.get("select_slider") if s.key and s.key.startswith("edit_")]) == 10
    before = at.dataframe[0].value["title"].tolist()
    first = index.recommend_new_user([(m, 4.0 if k % 2 else 2.5) for k, m in enumerate(ten)], 10, order="picks")[
        "movieId"
    ].iloc[0]
    assert before[0] == readable_title(index.movies.set_index("movieId").loc[first, "title"], with_year=False)
    at.selectbox(key="seen_pick").set_value(int(first)).run()
    at.feedback(key="seen_stars").set_value(4).run()  # five stars
    no_exception(at)
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert dict(store.ratings("guest"))[int(first)] == 5.0
    after = at.dataframe[0].value["title"].tolist()
    assert before[0] not in after and after != before and len(after) == 10
    assert at.selectbox(key="seen_pick").value is None  # ready for the next one
    # not interested: out of the list and the quick start, listed, and can be shown again
    title_of = dict(zip(as_shown(index.movies["title"]), map(int, index.movies["movieId"])))
    unwanted = title_of[after[0]]
    at.selectbox(key="seen_pick").set_value(unwanted).run()
    at.button(key="seen_hide").click().run()
    no_exception(at)
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert store.hidden("guest") == [unwanted] and unwanted not in dict(store.ratings("guest"))
    assert after[0] not in at.dataframe[0].value["title"].tolist()
    assert f"quick_{unwanted}" not in [f.key for f in at.get("feedback")]
    assert any(e.label == "Not interested (1)" for e in at.expander)
    at.button(key=f"unhide_{unwanted}").click().run()
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert store.hidden("guest") == []
    assert at.dataframe[0].value["title"].tolist()[0] == after[0]


def test_new_user_imports_and_exports_a_ratings_file(app_env):
    """An uploaded IMDb export joins the profile's ratings (those given before stay); a bad file is
    named with its line and changes nothing; the download gives the ratings back."""
    from engine.people.user_ratings import RatingStore

    at = open_page("pages/recommendations.py")
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    at.feedback(
        key="quick_" + next(f.key for f in at.get("feedback") if f.key.startswith("quick_")).removeprefix("quick_")
    ).set_value(1).run()
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        before = store.ratings("guest")
    assert len(before) == 1
    bad = b"Const,Your Rating\ntt0100000,10\ntt0100001,eleven\n"
    at.get("file_uploader")[0].set_value(("imdb.csv", bad, "text/csv")).run()
    at.button(key="ratings_import").click().run()
    no_exception(at)
    assert [e.value for e in at.error] == [
        "Importing imdb.csv failed: imdb.csv, line 3: the rating 'eleven' is not a number."
    ]
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert store.ratings("guest") == before
    unknown = b"Const,Your Rating,Title,Year\ntt9999999,8,Some Show,2008\n"
    at.get("file_uploader")[0].set_value(("shows.csv", unknown, "text/csv")).run()
    at.button(key="ratings_import").click().run()
    assert "Nothing to import" in at.warning[0].value and "Some Show" in at.warning[0].value
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        assert store.ratings("guest") == before
    good = b"Const,Your Rating,Title,Year\ntt0100000,10,Movie 1,1980\ntt0100001,7,Movie 2,1981\ntt9999999,8,Some Show,2008\n"
    at.get("file_uploader")[0].set_value(("imdb.csv", good, "text/csv")).run()
    at.button(key="ratings_import").click().run()
    no_exception(at)
    assert not at.error
    note = at.success[0].value.replace("\\", "")  # markdown-escaped
    assert "2 rating(s) read (IMDb ratings export file)" in note and "Some Show" in note and "2 added" in note
    at.run()  # the report stays, to be read at leisure, until dismissed
    assert at.success and "Some Show" in at.success[0].value
    at.button(key="import_note_close").click().run()
    assert not at.success
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        after = store.ratings("guest")
    assert after[0] == before[0] and set(after[1:]) == {(1, 5.0), (2, 3.5)}
    assert any("Your ratings (3)" in s.value for s in at.subheader)
    assert not at.get("file_uploader")[0].value  # emptied for the next file
    download = at.get("download_button")[0]
    assert download.proto.label == "Download my ratings (CSV)"


def test_movie_night_for_a_profile_and_a_movielens_user(app_env):
    """The group list is the index's: each person's predicted rating and the lowest of them (or the mean)."""
    from engine.people.user_ratings import RatingStore

    mine = [(1, 5.0), (2, 4.5), (3, 1.0)]
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        for movie, rating in mine:
            store.set_rating("sam", movie, rating)
    index = RecommenderIndex.load(app_env[1])
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.segmented_control(key="rec_mode").set_value("Movie night").run()
    assert "at least two people" in at.info[0].value
    at.multiselect(key="group_members").set_value(["profile:sam", 5]).run()
    no_exception(at)
    expected = index.recommend_group({"sam": mine, "user 5": 5}, 10)
    df = at.dataframe[0].value
    assert df["title"].tolist() == as_shown(expected["title"])
    assert df["for sam"].tolist() == expected["for sam"].tolist() and "for user 5" in df
    assert any(h.value == "Top 10 for sam, user 5" for h in at.subheader), [h.value for h in at.subheader]
    assert [list(why) for why in df["because"]] == [
        [f"{who}: {readable_title(t)}" for who, t in why] for why in expected["because_by"]
    ]
    at.radio(key="group_strategy").set_value("average").run()
    average = index.recommend_group({"sam": mine, "user 5": 5}, 10, strategy="average")
    assert at.dataframe[0].value["group_score"].tolist() == average["group_score"].tolist()
    assert "user" not in at.query_params
    with RatingStore(os.environ["RATINGS_DB"]) as store:  # sam is not interested in the top movie
        store.hide("sam", int(average["movieId"].iloc[0]))
    at.run()
    assert at.dataframe[0].value["title"].tolist()[:9] == as_shown(average["title"])[1:]


def test_similar_exact(app_env):
    at = similar_page(3)
    no_exception(at)
    from engine.data.movie_profile import movie_profile

    p = movie_profile(load_movielens(os.environ["MOVIELENS_DATA"]), 3)
    about = [e for e in at.expander if e.label.startswith("About ")]
    assert len(about) == 1 and about[0].label.endswith(f": {p.ratings:,} ratings, mean {p.mean_rating:.2f} ⭐")
    assert not about[0].metric and not at.get("plotly_chart"), "the closed panel is not drawn (no Plotly to load)"
    at.session_state["sim_about"] = True  # opened
    at.run()
    about = [e for e in at.expander if e.label.startswith("About ")]
    assert [m.value for m in about[0].metric] == [f"{p.ratings:,}", f"{p.mean_rating:.2f} ⭐"]
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="sim_movie").set_value(5).run()  # another movie's panel starts closed, as before
    about = [e for e in at.expander if e.label.startswith("About ")]
    assert not about[0].metric and not at.get("plotly_chart")
    at.selectbox(key="sim_movie").set_value(3).run()
    df = at.dataframe[0].value
    assert len(df) == 10 and not df["title"].str.startswith("Movie 3,").any()


def test_similar_to_several_movies_at_once(app_env):
    """Blending in more movies gives the index's several-seed list, in the heading and the address;
    a shared link with ?also= opens the same blend."""
    index = RecommenderIndex.load(app_env[1])
    at = similar_page(3)
    at.multiselect(key="sim_also").set_value([5, 7]).run()
    no_exception(at)
    expected = index.similar(3, 10, min_ratings=0, also=[5, 7])
    df = at.dataframe[0].value
    assert df["title"].tolist() == as_shown(expected["title"])
    assert at.subheader[0].value.count(" + ") == 2 and "The Movie 5" in at.subheader[0].value
    assert at.query_params["movie"] == "3" and at.query_params["also"] == "5,7"
    at.radio(key="sim_method").set_value("Spark LSH").run()  # LSH searches around one movie
    assert "exact search" in at.info[0].value and at.dataframe[0].value["title"].tolist() == df["title"].tolist()
    shared = _open_link("pages/similar.py", movie="3", also="5,7,424242")
    no_exception(shared)
    assert shared.multiselect(key="sim_also").value == [5, 7]
    assert shared.dataframe[0].value["title"].tolist()[:3] == as_shown(index.similar(3, 10, also=[5, 7])["title"])[:3]
    at.multiselect(key="sim_also").set_value([]).run()
    assert "also" not in at.query_params


def test_titles_shown_as_people_write_them(app_env):
    """MovieLens's "Movie 5, The (1984)" reads "The Movie 5" (the year has its own column); genres are chips."""
    at = similar_page(5)
    no_exception(at)
    assert any(h.value == "Most similar to The Movie 5 (1984)" for h in at.subheader), [h.value for h in at.subheader]
    df = at.dataframe[0].value
    assert df["genres"].map(lambda g: not isinstance(g, str) and all(isinstance(x, str) for x in g)).all()
    assert not df["title"].str.contains(r"\(\d{4}\)$").any()  # the Year column holds it
    # each row links to its own similar-movies page (relative: works under a base path too)
    expected = [
        "similar?movie=" + str(m) for m in RecommenderIndex.load(app_env[1]).similar(5, 10, min_ratings=0)["movieId"]
    ]
    assert df["similar"].tolist() == expected
    title = json.loads(at.dataframe[0].proto.columns)["title"]  # stays in view when the rest scrolls sideways
    assert title["pinned"] is True and title["label"] == "Title"


def test_statistics_tables(app_env):
    at = open_page("pages/statistics.py")
    no_exception(at)
    assert [m.value for m in at.metric][0] == "60"
    stats = compute_stats(load_movielens(os.environ["MOVIELENS_DATA"]))
    captions = [c.value for c in at.caption]
    for per, dist in (("user", stats.ratings_per_user), ("movie", stats.ratings_per_movie)):
        m = summarize(dist)
        assert (
            f"Per {per}: median {m['median']:g}, mean {m['mean']:.1f}, min {m['min']:,}, max {m['max']:,} ratings."
        ) in captions, captions
    from engine.data.stats import concentration

    # The charts are in three tabs, each drawn while open; all ratings given in 2001: no genres-over-the-years chart.
    titles = {}
    for tab in ("Ratings", "Genres and years", "Popularity and tags"):
        at.session_state["stats_tab"] = tab
        at.run()
        no_exception(at)
        titles[tab] = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles == {
        "Ratings": ["Ratings per user (logarithmic bins)", "Ratings per movie (logarithmic bins)", "Rating values"],
        "Genres and years": [
            "Movies per genre, coloured by mean rating",
            "Movies per release decade, coloured by mean rating",
            "Ratings per year",
        ],
        "Popularity and tags": ["How concentrated the ratings are (Lorenz curve)", "Top tags"],
    }, titles
    curve, gini = concentration(stats.ratings_per_movie)  # the Lorenz curve's caption (the tab last opened)
    top10 = curve.loc[10, "share_of_ratings"]
    captions = [c.value for c in at.caption]
    assert any(
        c.startswith(
            f"The most-rated 10 % of rated movies hold {top10:.0%} of the ratings; Gini coefficient {gini:.2f}"
        )
        for c in captions
    ), captions
    assert len(at.dataframe) == 1, "the most-rated table stays under every tab"
    at.session_state["stats_table"] = "Best rated"  # drawn while its tab is open
    at.run()
    at.slider(key="stats_min").set_value(5).run()
    no_exception(at)
    assert len(at.dataframe) == 1 and any(c.value == "Best rated (at least 5 ratings)" for c in at.caption)


def test_statistics_charts_built_once_per_slice_for_every_session(app_env, monkeypatch):
    """The figures of a tab are built once per slice and then drawn as they are for each visitor:
    a second session, and a rerun, get the same charts without building them again; another slice
    gets its own."""
    from pages import _stats_charts

    built = []
    for tab, builder in list(_stats_charts.BUILDERS.items()):

        def counted(s, whole, part, builder=builder, tab=tab):
            built.append((tab, part))
            return builder(s, whole, part)

        monkeypatch.setitem(_stats_charts.BUILDERS, tab, counted)

    def specs(at) -> list[str]:
        return [c.proto.spec for c in at.get("plotly_chart")]

    first = open_page("pages/statistics.py")
    no_exception(first)
    second = open_page("pages/statistics.py")  # another visitor
    second.run()  # and a rerun
    no_exception(second)
    assert specs(first) == specs(second) and len(specs(first)) == 3
    assert [tab for tab, _ in built] == ["Ratings"], built  # the other tabs are not open
    titles = [json.loads(spec)["layout"]["title"]["text"] for spec in specs(second)]
    assert titles[-1] == "Rating values"

    second.sidebar.multiselect(key="slice_genres").set_value(["Comedy"])
    second.sidebar.button(key="slice_apply").click().run()
    no_exception(second)
    assert len(built) == 2 and built[-1][1].genres == ("Comedy",)
    sliced = [json.loads(spec)["layout"]["title"]["text"] for spec in specs(second)]
    assert sliced[-1] == "Rating values: this slice against all ratings"
    first.session_state["stats_tab"] = "Genres and years"  # the first visitor, on everything
    first.run()
    no_exception(first)
    assert [tab for tab, _ in built] == ["Ratings", "Ratings", "Genres and years"]
    assert built[-1][1].everything


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_statistics_of_a_slice(app_env):
    from engine.data.stats import Slice

    data = load_movielens(os.environ["MOVIELENS_DATA"])
    at = open_page("pages/statistics.py")
    at.sidebar.multiselect(key="slice_genres").set_value(["Comedy", "Drama"])
    at.sidebar.slider(key="slice_released").set_value((1990, 2004))
    at.sidebar.button(key="slice_apply").click().run()  # the slice controls are a form
    no_exception(at)
    want = compute_stats(data, part=Slice(genres=("Comedy", "Drama"), released=(1990, 2004))).counts
    assert _metrics(at)["Ratings"] == f"{want['ratings']:,}" and _metrics(at)["Users"] == f"{want['users']:,}"
    assert any("Slice: Comedy or Drama movies released 1990–2004" in i.value for i in at.info)
    from engine.data.stats import slice_data

    sliced = slice_data(data, Slice(genres=("Comedy", "Drama"), released=(1990, 2004))).ratings["rating"]
    assert (
        f"Mean rating {sliced.mean():.2f} in this slice, {data.ratings['rating'].mean():.2f} over all ratings."
    ) in [c.value for c in at.caption]
    assert at.query_params["genres"] == "Comedy,Drama" and at.query_params["released"] == "1990-2004"
    shown = at.dataframe[0].value["title"]  # the tables are of the slice too
    assert len(shown) and all(1990 <= int(t[-5:-1]) <= 2004 for t in shown), list(shown)

    year = 1980  # a genre without a movie from that year: a slice with no ratings at all
    genre = next(
        g
        for g in ("Horror", "Thriller", "Sci-Fi", "Romance", "Action", "Comedy", "Drama")
        if data.movies[data.movies["genres"].str.contains(g) & (data.movies["year"] == year)].empty
    )
    at.sidebar.multiselect(key="slice_genres").set_value([genre])
    at.sidebar.slider(key="slice_released").set_value((year, year))
    at.sidebar.button(key="slice_apply").click().run()
    no_exception(at)
    assert any(f"No ratings for {genre} movies released {year}" in w.value for w in at.warning)
    at.sidebar.button(key="slice_reset").click().run()  # Show everything
    no_exception(at)
    assert _metrics(at)["Ratings"] == f"{len(data.ratings):,}" and "genres" not in at.query_params


def test_statistics_of_titles_without_years(app_env, monkeypatch, tmp_path):
    import re

    from conftest import generate_movielens, write_release

    files = generate_movielens(n_users=20, n_movies=30)
    files["movies.csv"] = re.sub(r" \(\d{4}\)", "", files["movies.csv"])  # no title has a year
    monkeypatch.setenv("MOVIELENS_DATA", str(write_release(tmp_path / "noyears", files)))
    at = open_page("pages/statistics.py")
    no_exception(at)
    assert not at.error and not any(s.label == "Released" for s in at.sidebar.slider)
    at.session_state["stats_tab"] = "Genres and years"
    at.run()
    assert any("No movie in this slice has a year in its title." in i.value for i in at.info)
    at.sidebar.multiselect(key="slice_genres").set_value(["Comedy"])
    at.sidebar.button(key="slice_apply").click().run()
    no_exception(at)
    assert any("Slice: Comedy movies" in i.value for i in at.info)


def test_statistics_slice_from_a_link(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"genres": "Comedy,Noir", "released": "2010-1990"})
    at.switch_page("pages/statistics.py")
    at.run()
    no_exception(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "genre this data does not have: 'Noir'" in warnings and "ends before it starts" in warnings
    assert any("Slice: Comedy movies" in i.value for i in at.info)


def test_no_model_explains_what_to_do(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "nothing"))
    for page in ("pages/recommendations.py", "pages/similar.py"):
        at = open_page(page)
        no_exception(at)
        assert any("No trained model" in w.value for w in at.warning)
    home = open_page("pages/home.py")
    assert any("Train the default model" in b.label for b in home.button)
    assert not home.warning and not home.info  # the first-run section says it all, once
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "CURRENT").write_text("als-gone\n")  # a pointer to a deleted model
    home = open_page("pages/home.py")
    no_exception(home)
    assert any("names 'als-gone', which does not exist" in w.value for w in home.warning)


def test_bad_data_is_a_message(app_env, monkeypatch, tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.setenv("MOVIELENS_DATA", str(bad))
    at = open_page("pages/statistics.py")
    no_exception(at)
    assert any("truncated or corrupt" in e.value for e in at.error)


def test_unknown_user_error_is_clear(app_env):
    # a stale user id in the session (e.g. after switching to a smaller model): 999 is not in it.
    # Set before the page draws its picker (AppTest cannot hold a picker value outside its options).
    at = open_page("pages/home.py")
    at.session_state["rec_user"] = 999
    at.switch_page("pages/recommendations.py")
    at.run()
    no_exception(at)
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    headings = [h.value for h in at.subheader]
    assert any("999" in m for m in shown) or (
        at.selectbox(key="rec_user").value != 999 and any(h.startswith("Top ") for h in headings)
    ), (shown, headings)
    assert not any(h.endswith("user 999") for h in headings)


def test_model_page_tables(app_env):
    at = open_page("pages/model.py")
    no_exception(at)
    rankers = at.dataframe[0].value["ranker"].tolist()
    assert rankers[0] == "Top picks (implicit ALS + EASE)" and "Most popular" in rankers
    saved = at.dataframe[-1].value
    assert saved["model"].tolist() == [app_env[1].name] and saved["current"].tolist() == [True]


def test_saved_models_tab_switches_and_deletes(app_env, monkeypatch, tmp_path):
    """The saved-models table marks the current model; another can be made current, or deleted
    after a confirmation; the current one cannot be deleted (its Delete is disabled)."""
    import shutil

    root = tmp_path / "models"
    shutil.copytree(app_env[0], root)
    current = app_env[1].name
    shutil.copytree(root / current, root / "als-19990101-000000-0001")
    monkeypatch.setenv("MODEL_DIR", str(root))
    at = open_page("pages/model.py")
    no_exception(at)
    table = at.dataframe[-1].value
    assert table["model"].tolist() == [current, "als-19990101-000000-0001"]
    assert table["current"].tolist() == [True, False] and (table["size_mb"] > 0).all()
    assert at.button(key="use_model").disabled and at.button(key="ask_delete_model").disabled  # the current one
    at.selectbox(key="pick_model").set_value("als-19990101-000000-0001").run()
    at.button(key="use_model").click().run()
    no_exception(at)
    assert (root / "CURRENT").read_text().strip() == "als-19990101-000000-0001"
    assert "is now the current model" in at.success[0].value
    assert at.dataframe[-1].value["current"].tolist() == [False, True]
    at.selectbox(key="pick_model").set_value(current).run()
    at.button(key="ask_delete_model").click().run()  # asks first, in a dialog (the browser test
    no_exception(at)  # confirms it: AppTest cannot click in one)
    assert (root / current).exists() and f"Delete **{current}** for good?" in at.markdown[-1].value


# ---------------------------------------------------------------------- emotion page
def _face_image(fer_zip, ext: str) -> bytes:
    import cv2

    from engine.emotion.detector import EmotionRecognizer
    from engine.emotion.frames import face_frame

    frame = face_frame(fer_zip, "happy", recognizer=EmotionRecognizer.load())
    return cv2.imencode(ext, frame)[1].tobytes()


def test_emotion_manual_choice(app_env):
    at = open_page("pages/emotion.py")
    no_exception(at)
    at.radio(key="mood_manual").set_value("sad").run()
    no_exception(at)
    assert any("Feeling sad" in s.value for s in at.subheader)
    movies = [d.value for d in at.dataframe if "genres" in d.value.columns]
    genres = movies[-1]["genres"]  # the manual tab's list (the About tab's tables come later)
    assert len(genres) and genres.map(lambda g: "Drama" in list(g)).all()  # shown as chips


def test_emotion_list_for_your_own_profile(app_env):
    """A profile rated on the Recommendations page can be picked here: the mood list is its top picks."""
    from engine.people.user_ratings import RatingStore
    from engine.recommender.mood import mood_recommendations

    mine = [(1, 5.0), (2, 4.5), (3, 1.0), (8, 4.0)]
    with RatingStore(os.environ["RATINGS_DB"]) as store:
        for movie, rating in mine:
            store.set_rating("sam", movie, rating)
        store.set_rating("empty", 1, 3.0)
        store.remove_rating("empty", 1)  # a profile with nothing rated
    at = open_page("pages/emotion.py")
    picker = at.sidebar.selectbox(key="mood_user")
    assert picker.options[:2] == ["Anyone", "You: sam (4 ratings)"] and picker.options[2].startswith("MovieLens user")
    picker.set_value("profile:sam").run()
    at.radio(key="mood_manual").set_value("sad").run()
    no_exception(at)
    shown = [d.value for d in at.dataframe if "genres" in d.value.columns][-1]
    index = RecommenderIndex.load(app_env[1])
    expected = mood_recommendations("sad", index.movies, 8, 20, index=index, ratings=mine)
    assert len(shown) and shown["title"].tolist() == as_shown(expected["title"])
    assert any("ranked by top picks" in c.value for c in at.caption)


@pytest.mark.integration
def test_emotion_photo_paths(app_env, fer_zip):
    for widget, name, mime in (("camera_input", "face.jpg", "image/jpeg"), ("file_uploader", "face.png", "image/png")):
        at = open_page("pages/emotion.py")
        element = getattr(at, widget)(key="mood_camera" if widget == "camera_input" else "mood_upload")
        element.set_value((name, _face_image(fer_zip, "." + name.split(".")[1]), mime)).run()
        no_exception(at)
        assert any("happy" in m.value for m in at.markdown), widget
        assert any("Feeling happy" in s.value for s in at.subheader), widget
        genres = at.dataframe[0].value["genres"]
        assert genres.map(lambda g: bool({"Comedy", "Romance"} & set(g))).all()


def test_emotion_model_card(app_env, monkeypatch, tmp_path):
    import shutil

    metrics = json.loads((REPO / "models/emotion/metrics.json").read_text())
    at = open_page("pages/emotion.py")
    no_exception(at)
    # The card's tab is drawn only while open (its charts would load Plotly on every visit).
    assert not at.metric and not at.get("plotly_chart")
    at = open_about(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["FER2013 test accuracy"] == f"{metrics['accuracy']:.1%}"
    assert len(at.get("plotly_chart")) >= 3  # per class, confusion, training curve
    members = metrics.get("members") or []
    if members:  # an ensemble lists its networks with their own test accuracy
        nets = next(d.value for d in at.dataframe if "architecture" in d.value.columns)
        assert nets["test accuracy"].tolist() == [m["test"]["accuracy"] for m in members]

    # A damaged metrics.json next to a good model: the card says which file and line.
    broken = tmp_path / "emotion"
    broken.mkdir()
    shutil.copy(REPO / "models/emotion/emotion.keras", broken)
    (broken / "metrics.json").write_text('{"accuracy": 0.7,\n oops}')
    monkeypatch.setenv("EMOTION_MODEL_DIR", str(broken))
    import streamlit as st

    st.cache_resource.clear()
    at = open_about(open_page("pages/emotion.py"))
    assert any("metrics.json, line 2: not valid JSON" in e.value for e in at.error)


def open_about(at: AppTest) -> AppTest:
    """The webcam page with its "About the model" tab open (as a click on it sets the tabs' state)."""
    at.session_state["mood_tab"] = "About the model"
    at.run()
    no_exception(at)
    return at


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("EMOTION_RUNTIME", "gpu", "EMOTION_RUNTIME='gpu': use one of litert, tensorflow, or unset it"),
        ("MOOD_GENRES", "{happy: [", "MOOD_GENRES is not valid JSON"),
    ],
)
def test_bad_setting_is_a_message_not_a_stack_trace(app_env, monkeypatch, name, value, message):
    """The entry script reads the settings before any page runs, the webcam page's included (a page
    that Streamlit starts alone, as AppTest's page switch does, runs through the entry script)."""
    monkeypatch.setenv(name, value)
    for page in ("pages/home.py", "pages/emotion.py"):
        at = open_page(page)
        no_exception(at)
        assert any(message in e.value for e in at.error), page
        assert not at.title and not at.get("plotly_chart") and not at.dataframe, page  # stopped first


def test_emotion_bad_upload_is_a_message(app_env):
    at = open_page("pages/emotion.py")
    at.file_uploader(key="mood_upload").set_value(("x.jpg", b"not an image", "image/jpeg")).run()
    no_exception(at)
    assert any("not a JPEG, PNG or WebP" in e.value for e in at.error)


@pytest.mark.spark
@pytest.mark.slow
def test_model_page_grid_search(app_env):
    at = open_page("pages/model.py", timeout=300)
    at.multiselect(key="grid_rank").set_value([4]).run()
    at.multiselect(key="grid_iter").set_value([5]).run()
    at.multiselect(key="grid_reg").set_value([0.1, 0.2]).run()
    at.number_input(key="grid_folds").set_value(2).run()
    next(b for b in at.button if b.label == "Run the grid search").click().run(timeout=300)
    no_exception(at)
    assert any("2-fold CV" in s.value for s in at.subheader)
    assert any(len(d.value) == 2 for d in at.dataframe)  # the CV table


@pytest.mark.spark
@pytest.mark.slow
def test_home_first_run_trains(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    at = open_page("pages/home.py", timeout=300)
    next(b for b in at.button if b.label == "Train the default model").click().run(timeout=300)
    no_exception(at)
    assert (tmp_path / "models" / "CURRENT").exists()
    assert "Test RMSE" in [m.label for m in at.metric]


def _open_link(page: str, **params) -> AppTest:
    """A fresh session opened at ``page?params`` (a shared link)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.switch_page(page)
    at.run()
    return at


def test_shared_links_open_their_movie_and_user(app_env):
    """/similar?movie=… (an id or a title) and /recommendations?user=… open there; the address follows."""
    at = _open_link("pages/similar.py", movie="the movie 5")
    no_exception(at)
    assert at.selectbox(key="sim_movie").value == 5 and not at.warning
    at.selectbox(key="sim_movie").set_value(3).run()
    assert at.query_params["movie"] == "3"
    bad = _open_link("pages/similar.py", movie="no such film")
    no_exception(bad)
    assert "No movie id or title matches" in bad.warning[0].value and bad.dataframe  # still a page
    rec = _open_link("pages/recommendations.py", user="7")
    assert rec.selectbox(key="rec_user").value == 7 and any("user 7" in h.value for h in rec.subheader)
    taste = RecommenderIndex.load(app_env[1]).user_profile(7)
    assert any(
        c.value.startswith(f"{taste['ratings']:,} movies rated, {taste['mean_rating']:.2f} ⭐") for c in rec.caption
    ), [c.value for c in rec.caption]
    assert rec.query_params["user"] == "7"
    unknown = _open_link("pages/recommendations.py", user="99999")
    no_exception(unknown)
    assert "does not know" in unknown.warning[0].value and unknown.query_params["user"] != "99999"


def _go(at: AppTest, page: str, **link) -> AppTest:
    """Within the same session, go to ``page``: by the sidebar (no link), or by a link with ``link``
    in its address (a *Try* link on the home page)."""
    at.query_params.clear()
    at.query_params.update(link)
    at.switch_page(page)
    return at.run()


def test_choices_stay_when_you_come_back_and_a_followed_link_still_wins(app_env):
    """Leaving a page and coming back keeps what was chosen there (filters, user, mode, profile,
    movie, slice); following a link that names something opens what it names instead."""
    at = open_page("pages/recommendations.py")
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.sidebar.slider(key="rec_n").set_value(3).run()
    at.sidebar.radio(key="rec_order").set_value("rating").run()
    at.selectbox(key="rec_user").set_value(5).run()
    _go(at, "pages/similar.py")
    at.slider(key="sim_min").set_value(0).run()
    at.selectbox(key="sim_movie").set_value(3).run()
    at.multiselect(key="sim_also").set_value([5]).run()
    _go(at, "pages/statistics.py")
    at.sidebar.multiselect(key="slice_genres").set_value(["Comedy"])
    at.sidebar.button(key="slice_apply").click().run()

    _go(at, "pages/recommendations.py")  # back: user 5's three best by rating, as left
    no_exception(at)
    assert at.selectbox(key="rec_user").value == 5 and at.sidebar.slider(key="rec_n").value == 3
    assert at.sidebar.radio(key="rec_order").value == "rating" and at.sidebar.slider(key="rec_min").value == 0
    assert len(at.dataframe[0].value) == 3 and at.query_params["user"] == "5"
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    at.text_input(key="profile").set_value("alice").run()
    _go(at, "pages/similar.py")  # back: the same blend
    assert at.selectbox(key="sim_movie").value == 3 and at.multiselect(key="sim_also").value == [5]
    assert at.query_params["movie"] == "3" and at.query_params["also"] == "5"
    _go(at, "pages/statistics.py")  # back: the same slice, and the address links to it again
    assert at.sidebar.multiselect(key="slice_genres").value == ["Comedy"]
    assert any("Slice: Comedy movies" in i.value for i in at.info) and at.query_params["genres"] == "Comedy"
    _go(at, "pages/recommendations.py")  # back: still alice's new-user page, not guest's
    no_exception(at)
    assert at.segmented_control(key="rec_mode").value == "Me (new user)"
    assert at.text_input(key="profile").value == "alice"

    _go(at, "pages/home.py")  # links followed (the home page's Try links):
    _go(at, "pages/recommendations.py", user="7")  # what they name, not what was kept
    assert at.segmented_control(key="rec_mode").value == "A MovieLens user"
    assert at.selectbox(key="rec_user").value == 7 and any("user 7" in h.value for h in at.subheader)
    _go(at, "pages/similar.py", movie="the movie 5")
    assert at.selectbox(key="sim_movie").value == 5 and at.multiselect(key="sim_also").value == []
    _go(at, "pages/statistics.py", genres="Drama", released="1990-1999")
    assert at.sidebar.multiselect(key="slice_genres").value == ["Drama"]
    assert any("Slice: Drama movies released 1990–1999" in i.value for i in at.info)
    at.sidebar.multiselect(key="slice_genres").set_value(["Drama", "Horror"])  # a change on the page
    at.sidebar.button(key="slice_apply").click().run()
    assert any("Slice: Drama or Horror movies released 1990–1999" in i.value for i in at.info)  # is kept
    no_exception(at)


def test_pickers_over_many_choices_list_some_and_take_any_typed_in(app_env, monkeypatch):
    """Past LISTED choices (162 k users, 59 k movies at 25 M ratings) a picker lists the first ones, keeps
    the current choice shown, and takes any other typed in: a known user or movie (id or title) is
    served, an unknown one is named in a warning. (AppTest cannot type a value that is not listed: the
    typed values go through typed_user / typed_movie, called here as the pages call them.)"""
    import pages._common as common

    index = RecommenderIndex.load(app_env[1])
    monkeypatch.setattr(common, "LISTED", 3)
    users = [int(u) for u in index.user_ids]
    at = open_page("pages/recommendations.py")
    assert at.selectbox(key="rec_user").options == [str(u) for u in users[:3]]
    at = _open_link("pages/recommendations.py", user=str(users[-1]))  # chosen by a link: listed too
    no_exception(at)
    assert at.selectbox(key="rec_user").options == [str(u) for u in [*users[:3], users[-1]]]
    assert at.subheader[0].value.endswith(f" for user {users[-1]}") and len(at.dataframe[0].value)
    at = open_page("pages/similar.py")
    assert len(at.selectbox(key="sim_movie").options) <= 4 and len(at.multiselect(key="sim_also").options) <= 4
    at = open_page("pages/emotion.py")
    assert at.selectbox(key="mood_user").options[:1] == ["Anyone"] and len(at.selectbox(key="mood_user").options) <= 4

    assert common.listed(list(range(10)), 7, 42) == ([0, 1, 2, 7], True)  # 42 is no choice: not shown
    assert common.listed([1, 2], 2) == ([1, 2], False)
    assert common.typed_user(f" {users[-1]} ", index) == users[-1] and common.typed_user(5, index) == 5
    assert common.typed_user("424242", index) is None and common.typed_user("x; drop", index) is None
    assert common.typed_user(common.PROFILE + "sam", index) == common.PROFILE + "sam"
    last = int(index.search_titles("", limit=len(index.item_ids))["movieId"].iloc[-1])  # the least rated
    title = index.readable_titles[last]
    assert common.typed_movie(str(last), index) == last and common.typed_movie(title, index) == last
    assert common.typed_movie("no such film at all", index) is None
