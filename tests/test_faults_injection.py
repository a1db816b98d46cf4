"""Nothing injected (issue 23, items 4 and 9): what a link, a file, a profile or a dataset says reaches
the page as text (no link, image or HTML of its own), and the CSV export opens in a spreadsheet as text.

The app's markdown (every st.markdown/error/warning/info/caption/toast and label) links bare URLs
after undoing backslash escapes, and Plotly draws ``<a href>`` in labels: the payloads below try each.
"""

from __future__ import annotations

import csv
import io
import os
import re
import urllib.parse

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO, _train_and_save, cli_env, generate_movielens, write_release
from engine.people.rating_files import MOVIELENS, export_ratings, read_ratings_file, spreadsheet_safe
from pages._common import WORD_JOINER, chart_text, md_escape

APP = str(REPO / "streamlit_app.py")
IMAGE = "![b](http://127.0.0.1:9/x.png)"  # port 9: nothing listens, nothing leaks
PHISH = "[Session expired: log in again](http://evil.example/login)"
HTML = "<img src=http://127.0.0.1:9/y.png>"
NO_MATCH = "[Log on](http://evil.example/none) www.evil.example"  # names no movie of the payload dataset
PAYLOADS = [
    IMAGE,
    PHISH,
    HTML,
    "http://evil.example/auto",
    "www.evil.example",
    "mail me@evil.example",
    "<http://evil.example/angle>",
    ":material/home: :red[red] `code` *em* $x$ ~~s~~ a|b &lt;",
    "# heading",
    "1. list",
    "[ref]\n\n[ref]: http://evil.example/ref",
    "http&#58;//evil.example/ent",
    "\\[x](http://evil.example/backslash)",
]


def _resolved(md: str) -> str:
    """The text markdown makes of ``md`` once backslash escapes are undone (what its autolinker reads)."""
    return re.sub(r"\\(.)", r"\1", md, flags=re.S)


def active(md: str) -> list[str]:
    """What in ``md`` would become a link, an image, HTML, an entity or an icon when rendered."""
    bare = re.sub(r"\\.", "", md, flags=re.S)  # escaped characters are plain text
    return (
        [c for c in ("](", "<", ":material/") if c in bare]
        + re.findall(r"&#?\w+;", bare)
        + re.findall(r"(?i)https?://|www\.|[\w.+-]@\w", _resolved(md))
    )


def shown(md: str) -> str:
    """The words a reader sees for ``md`` (escapes undone, the invisible word joiners dropped)."""
    return _resolved(md).replace(WORD_JOINER, "")


# -- the helper and the export, without a page ------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_escape_leaves_text_and_nothing_active(payload):
    escaped = md_escape(payload)
    assert active(escaped) == [], escaped
    assert shown(escaped) == payload


def test_md_escape_keeps_plain_messages_as_they_were():
    """Messages people (and tests) read in the markdown source stay unchanged when nothing in them is active."""
    plain = "Importing my_ratings.csv failed: line 3: the rating 'x' (of 5) is not a number - see #2."
    assert md_escape(plain) == plain


def test_chart_labels_are_html_escaped():
    frame = pd.DataFrame({"tag": ["<a href='http://evil.example/p'>x</a>", "R&B"], "count": [1, 2]})
    assert chart_text(frame, "tag")["tag"].tolist() == ["&lt;a href='http://evil.example/p'&gt;x&lt;/a&gt;", "R&amp;B"]
    assert frame["tag"][1] == "R&B" and chart_text(["<b>"]) == ["&lt;b&gt;"]


FORMULAS = ['=HYPERLINK("http://evil.example/x","click")', "+1+1", "-2+3", "@SUM(A1:A2)"]


def test_export_neutralises_spreadsheet_formulas_and_reads_back():
    movies = pd.DataFrame(
        {
            "movieId": range(1, 6),
            "title": [f"{t} (1999)" for t in FORMULAS] + ["Plain (2000)"],
            "year": pd.array([1999] * 4 + [2000], dtype="Int64"),
            "imdbId": ["=1+2", "\t0000002", "0000003", "0000004", "0000005"],
        }
    )
    pairs = [(m, 0.5 + m / 2) for m in range(1, 6)]
    text = export_ratings(pairs, movies)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["title"] for r in rows] == [f"'{t}" for t in FORMULAS] + ["Plain"]
    assert [r["imdbId"] for r in rows[:3]] == ["'=1+2", "'\t0000002", "0000003"]
    assert [r["rating"] for r in rows] == [f"{r:g}" for _, r in pairs]  # numbers as they were
    for cell in (c for r in rows for c in r.values()):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    read = read_ratings_file(text.encode(), "mine.csv", movies)  # this app's import reads it back
    assert read.layout == MOVIELENS and read.pairs == pairs and not read.unmatched
    assert spreadsheet_safe("\rx") == "'\rx" and spreadsheet_safe("'=x") == "'=x" and spreadsheet_safe("") == ""
    assert spreadsheet_safe(3.5) == 3.5


# -- every page, through AppTest, on a dataset whose strings are payloads -----------------------------

TITLES = [f"{IMAGE} {PHISH} (1999)", f"{HTML} www.evil.example/t (2001)", '=HYPERLINK("http://evil.example") (2002)']
TAGS = ["[tag link](http://evil.example/tag)", "<a href='http://evil.example/p'>x</a>", "www.evil.example/tag"]
GENRE = "![g](http://127.0.0.1:9/genre.png)"


@pytest.fixture(scope="module")
def payload_release(tmp_path_factory):
    """The generated release, its three most-rated movies titled with payloads, tagged with them, and one
    genre a payload too: what a dataset someone brings may say."""
    files = generate_movielens()
    frames = {name: pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False) for name, text in files.items()}
    top = frames["ratings.csv"]["movieId"].value_counts().index[:3].tolist()
    movies = frames["movies.csv"]
    for movie_id, title in zip(top, TITLES):
        movies.loc[movies["movieId"] == movie_id, "title"] = title
    movies.loc[movies["movieId"] == top[0], "genres"] = f"Drama|{GENRE}"
    frames["tags.csv"] = pd.concat(
        [
            frames["tags.csv"],
            pd.DataFrame(
                {"userId": ["1", "2", "3"], "movieId": [top[0]] * 3, "tag": TAGS, "timestamp": ["1100000000"] * 3}
            ),
        ]
    )
    folder = tmp_path_factory.mktemp("ml-payloads")
    return write_release(folder, {name: df.to_csv(index=False) for name, df in frames.items()}), [int(m) for m in top]


@pytest.fixture(scope="module")
def payload_model(spark, payload_release, tmp_path_factory):
    from engine.data.movielens import load_movielens
    from engine.recommender.training import ALSConfig

    cfg = ALSConfig(rank=4, max_iter=5, reg_param=0.1, min_ratings=1)
    return _train_and_save(spark, load_movielens(payload_release[0]), cfg, tmp_path_factory.mktemp("models-payload"))


@pytest.fixture()
def payload_env(monkeypatch, payload_release, payload_model, tmp_path):
    monkeypatch.setenv("MOVIELENS_DATA", str(payload_release[0]))
    monkeypatch.setenv("MODEL_DIR", str(payload_model[0]))
    monkeypatch.setenv("RATINGS_DB", str(tmp_path / "ratings.sqlite"))
    monkeypatch.chdir(REPO)
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return payload_release[1]


def _open(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(params)
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rendered(at: AppTest) -> list[str]:
    """The markdown of every element that renders it (and of expander labels)."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error", "toast")
    return [e.value for kind in kinds for e in getattr(at, kind)] + [e.label for e in at.expander]


def assert_as_text(at: AppTest, *expected: str) -> None:
    """Nothing on the page can link, load or format on a payload's behalf; each ``expected`` text is seen."""
    texts = rendered(at)
    for md in texts:
        assert active(md) == [], md
    seen = "\n".join(shown(md) for md in texts)
    for text in expected:
        assert text in seen, (text, texts)


@pytest.mark.spark  # the payload model: trained once for the module
def test_statistics_links_naming_payloads(payload_env):
    at = _open("pages/statistics.py", genres=f"Comedy,{PHISH}", released=IMAGE)
    assert_as_text(at, f"genre this data does not have: {PHISH!r}", IMAGE, "Showing every year")
    at = _open("pages/statistics.py", genres=GENRE, rated=HTML)  # a genre of the data itself
    assert_as_text(at, f"Slice: {GENRE} movies", HTML)


@pytest.mark.spark
def test_similar_movies_of_payload_titles_tags_and_links(payload_env, payload_model):
    from engine.recommender.serving import RecommenderIndex

    top = payload_env
    at = _open("pages/similar.py", movie=NO_MATCH)
    assert_as_text(at, f"The link asks for movie “{NO_MATCH}”")
    at = _open("pages/similar.py", movie=str(top[0]))
    at.slider(key="sim_min").set_value(0).run()
    at.multiselect(key="sim_also").set_value([top[1]]).run()
    at.session_state["sim_about"] = True  # the About panel (its tags) is drawn while open
    at.run()
    title = RecommenderIndex.load(payload_model[1]).readable_titles[top[0]]
    assert_as_text(at, f"Most similar to {title} + ", f"About {title}", *TAGS)


@pytest.mark.spark
def test_recommendations_link_profile_search_tiles_and_toasts(payload_env):
    at = _open("pages/recommendations.py", user=PHISH)
    assert_as_text(at, f"The link asks for user “{PHISH}”")
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    at.text_input(key="profile").set_value(PHISH).run()
    at.text_input(key="rate_query").set_value(NO_MATCH).run()
    assert_as_text(at, f"No title contains “{NO_MATCH}”", IMAGE)  # IMAGE: the first tile's title
    at.feedback(key=f"quick_{payload_env[0]}").set_value(3).run()
    assert_as_text(at, f"Saved 4★ for {IMAGE}")  # the toast


@pytest.mark.spark
def test_imported_file_names_and_cells_are_text(payload_env):
    at = _open("pages/recommendations.py")
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    at.text_input(key="profile").set_value(IMAGE).run()
    name = f"{PHISH}.csv"

    def upload(data: bytes) -> None:
        at.get("file_uploader")[0].set_value((name, data, "text/csv")).run()
        at.button(key="ratings_import").click().run()
        assert not at.exception, [e.value for e in at.exception]

    upload(f"Const,Your Rating\ntt0100000,{HTML}\n".encode())  # a malformed line
    assert at.error and "line 2" in shown(at.error[0].value)
    assert_as_text(at, f"Importing {name} failed: {name}, line 2", HTML)
    upload(f"Const,Your Rating,Title,Year\ntt9999999,8,{IMAGE},2008\n".encode())  # nothing matched
    assert_as_text(at, f"{name}: 0 rating(s) read", f"line 2: {IMAGE} (2008)", "Nothing to import")
    upload(b"movieId,rating\n1,4\n")
    assert_as_text(at, f"{name}: 1 rating(s) read", f"Saved under “{IMAGE}”")


@pytest.mark.spark
def test_movie_night_of_payload_profiles(payload_env):
    from engine.people.user_ratings import RatingStore

    with RatingStore(os.environ["RATINGS_DB"]) as store:
        store.set_rating(PHISH, 1, 4.0)
    at = _open("pages/recommendations.py")
    at.segmented_control(key="rec_mode").set_value("Movie night").run()
    at.sidebar.slider(key="rec_min").set_value(0).run()
    at.multiselect(key="group_members").set_value([f"profile:{PHISH}", 1]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert_as_text(at, f"for {PHISH}, user 1")


# -- in Chromium: no request leaves the page, no link or image of a payload's ---------------------------


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.spark
def test_payload_links_load_nothing_and_link_nowhere(payload_release, payload_model, tmp_path):
    from playwright.sync_api import sync_playwright

    from conftest import MISSING_CHROMIUM, has_chromium, need
    from test_browser import _browser, _streamlit, _wait_idle

    need(has_chromium(), MISSING_CHROMIUM)
    top = payload_release[1]
    q = lambda **params: urllib.parse.urlencode(params)
    paths = [
        f"statistics?{q(genres=f'Comedy,{PHISH}', released=IMAGE, rated=HTML)}",
        f"statistics?{q(genres=GENRE)}",  # the payload genre and tags in its charts
        f"similar?{q(movie=NO_MATCH)}",
        f"similar?{q(movie=top[0])}",
        f"recommendations?{q(user=f'{PHISH} www.evil.example')}",
    ]
    env = cli_env(
        MOVIELENS_DATA=payload_release[0],
        MODEL_DIR=payload_model[0],
        RATINGS_DB=tmp_path / "ratings.sqlite",
        SPARK_CHECKPOINT_DIR=tmp_path / "ckpt",
    )
    with _streamlit(env) as url, sync_playwright() as playwright:
        browser = _browser(playwright)
        for path in paths:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{url}/{path}")
            page.get_by_role("heading", level=1).first.wait_for(timeout=120000)
            _wait_idle(page, timeout=120000)
            if path.startswith("similar?movie=") and path.endswith(str(top[0])):
                page.get_by_text("About ").first.click()  # the tags, drawn as badges
                page.get_by_text("tag link").first.wait_for(timeout=30000)
            elif path.startswith("statistics?genres=Comedy"):
                page.get_by_text("Session expired: log in again").first.wait_for(timeout=30000)  # as text
            main = page.locator("[data-testid=stMain]")
            links = main.locator("a[href*='evil.example'], a[href*='127.0.0.1:9'], img[src*='127.0.0.1:9']")
            assert links.count() == 0, (path, [links.nth(i).evaluate("e => e.outerHTML") for i in range(links.count())])
            foreign = [r for r in requests if not r.startswith((url, "data:", "blob:"))]
            assert foreign == [], (path, foreign)
            page.close()
        browser.close()
