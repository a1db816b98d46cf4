"""End to end in a real browser: `streamlit run` on a free port, Debian's Chromium via Playwright.

Screenshots of every page go to test-artifacts/screenshots/ (git-ignored); timings
(first render per page, recommendation update, webcam frames/s) to
test-artifacts/browser_timings.json, which bench/bench_browser.py prints.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import CHROMIUM, MISSING_CHROMIUM, REPO, cli_env, has_chromium, need

ORDER_NOTES = {
    "picks": "Top picks: the movies most likely to be watched and enjoyed next.",
    "rating": "Ordered by the highest predicted rating.",
}

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

ARTIFACTS = REPO / "test-artifacts"
SHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMINGS: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


@contextmanager
def _streamlit(env: dict):
    """`streamlit run streamlit_app.py` on a free port; yields its URL."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _app_env(real_model, movielens_zip, tmp: Path) -> dict:
    need(has_chromium(), MISSING_CHROMIUM)
    return cli_env(
        MOVIELENS_DATA=movielens_zip,
        MODEL_DIR=real_model[0],
        RATINGS_DB=tmp / "ratings.sqlite",
        SPARK_CHECKPOINT_DIR=tmp / "ckpt",
        EMOTION_LOAD="background",  # as `make run` (the AppTests load them on demand: tests/conftest.py)
    )


@pytest.fixture(scope="module")
def server(real_model, movielens_zip, tmp_path_factory):
    with _streamlit(_app_env(real_model, movielens_zip, tmp_path_factory.mktemp("browser"))) as url:
        try:
            yield url
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            old = (
                json.loads((ARTIFACTS / "browser_timings.json").read_text())
                if (ARTIFACTS / "browser_timings.json").exists()
                else {}
            )
            (ARTIFACTS / "browser_timings.json").write_text(json.dumps({**old, **TIMINGS}, indent=2))


def _browser(playwright, extra_args=()):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + list(extra_args))


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _wait_idle(page, timeout=60000):
    """Until the app's script is not running (nor asked to rerun) and every element is drawn:
    widgets and grids load their code lazily and stand as grey skeletons meanwhile, and a Plotly
    chart has its SVG. Two animation frames first, so that a rerun a click just asked for has
    reached the page's state (the app marks it ``rerunRequested`` as it sends it)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    page.wait_for_function(
        """() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning' &&
                 !document.querySelector('[data-testid=stStatusWidget]') &&
                 !document.querySelector('[data-testid=stSkeleton]') &&
                 [...document.querySelectorAll('[data-testid=stPlotlyChart]')]
                     .every(chart => chart.querySelector('.main-svg'))""",
        timeout=timeout,
    )
    assert_no_error(page)


def assert_no_error(page) -> None:
    """No exception box, no error alert and no 'This app has encountered an error' anywhere."""
    found = page.evaluate("""() => [
        ...[...document.querySelectorAll('[data-testid=stException]')].map(e => 'exception: ' + e.innerText),
        ...[...document.querySelectorAll('[data-testid=stAlertContentError]')].map(e => 'error: ' + e.innerText),
        ...(document.body.innerText.includes('This app has encountered an error') ? ['app crashed'] : [])]""")
    assert not found, found


def _webcam_page(playwright, server: str, video, width: int = 1400, height: int = 1100):
    """A fresh Chromium whose fake camera plays ``video`` (Y4M, looped), on the emotion page."""
    browser = _browser(
        playwright,
        [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    context = browser.new_context(viewport={"width": width, "height": height})
    context.grant_permissions(["camera"], origin=server)
    page = context.new_page()
    page.goto(f"{server}/emotion")
    return browser, page


def _step_slider(page, steps: int, nth: int = 0) -> None:
    """Move the nth slider by keyboard, as a user can."""
    page.get_by_role("slider").nth(nth).focus()
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")


def _open_page(playwright, server: str, path: str, height: int = 1000):
    """A fresh headless Chromium, 1400 px wide, showing ``path``."""
    browser = _browser(playwright)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(f"{server}/{path}")  # straight there, as a bookmark does
    return browser, page


def _grid_rows(page, nth=0, expect=None, timeout_s=30) -> int:
    """Rows of the nth grid; with ``expect``, wait (up to timeout_s) for a rerun to redraw it."""
    grid = page.locator("[data-testid=stDataFrame] [role=grid]").nth(nth)
    grid.wait_for(state="attached", timeout=60000)
    if expect is not None:
        try:
            page.wait_for_function(
                "([n, rows]) => { const g = [...document.querySelectorAll("
                "'[data-testid=stDataFrame] [role=grid]')].at(n);"
                " return g && Number(g.getAttribute('aria-rowcount')) - 1 === rows; }",
                arg=[nth, expect],
                timeout=timeout_s * 1000,
            )
        except Exception:  # noqa: BLE001 - the caller's assertion reports the count it got
            pass
    return int(grid.get_attribute("aria-rowcount")) - 1  # minus the header row


def test_a_deep_link_into_a_fresh_server_gets_the_app_navigation(real_model, movielens_zip, tmp_path, playwright):
    """A bookmarked page is the first request after a restart: it must still run inside
    streamlit_app.py's navigation (Streamlit's legacy pages/ mode ran the file alone and
    listed raw file names such as "common" and "streamlit app", until the home page was opened)."""
    with _streamlit(_app_env(real_model, movielens_zip, tmp_path)) as url:
        browser, page = _open_page(playwright, url, "similar", height=900)
        page.get_by_role("heading", name=re.compile("Similar movies")).first.wait_for(timeout=90000)
        page.get_by_text("Most similar to").first.wait_for(timeout=120000)
        _wait_idle(page)
        nav = page.locator("[data-testid=stSidebarNav]").inner_text()
        titles = ["Home", "Dataset statistics", "Recommendations", "Similar movies", "Mood from your face", "Model"]
        assert [line for line in nav.splitlines() if line.strip() in titles] == titles, nav
        assert "common" not in nav and "streamlit app" not in nav.lower()
        assert urllib.parse.urlparse(page.url).path == "/similar" and page.title() == "Movie Recommender"
        browser.close()


@pytest.mark.parametrize("width", [1400, 420])
def test_every_page_renders(server, playwright, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser = _browser(playwright)
    page = browser.new_page(viewport={"width": width, "height": 1000})
    t0 = time.perf_counter()
    page.goto(server)
    page.get_by_role("heading", name=re.compile("Movie Recommender")).wait_for(timeout=90000)
    page.get_by_text("Test RMSE").first.wait_for(timeout=90000)
    _wait_idle(page)
    TIMINGS.setdefault(f"first_render_s@{width}", {})["home"] = round(time.perf_counter() - t0, 2)
    page.screenshot(path=str(SHOTS / f"home-{width}.png"), full_page=True)
    # page -> (heading, text that appears only once the page has finished rendering)
    expected = {
        "statistics": ("Dataset statistics", "Most-rated and best-rated movies"),
        "recommendations": ("Recommendations", "Top 10 for user 575"),
        "similar": ("Similar movies", "Most similar to"),
        "emotion": ("Mood from your face", "Press START"),
        "model": ("Model", "Current model:"),
    }
    for path, (heading, ready) in expected.items():
        t0 = time.perf_counter()
        page.goto(f"{server}/{path}")
        page.get_by_role("heading", name=re.compile(heading)).first.wait_for(timeout=90000)
        page.get_by_text(ready).first.wait_for(timeout=120000)
        _wait_idle(page, timeout=120000)
        TIMINGS[f"first_render_s@{width}"][path] = round(time.perf_counter() - t0, 2)
        if path == "statistics":  # nine Plotly charts in three tabs, each tab's drawn (not skeletons) when opened
            titles = page.locator("[data-testid=stPlotlyChart] .gtitle").all_text_contents()
            assert len(titles) == 3 and "Ratings per user (logarithmic bins)" in titles, titles
            for tab, count, title in (
                ("Genres and years", 4, "Movies per release decade, coloured by mean rating"),
                ("Popularity and tags", 2, "How concentrated the ratings are (Lorenz curve)"),
            ):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_function(  # the rerun that draws the tab's charts has reached the page
                    """title => [...document.querySelectorAll('[data-testid=stPlotlyChart] .gtitle')]
                                   .some(e => e.textContent === title)""",
                    arg=title,
                    timeout=120000,
                )
                _wait_idle(page, timeout=120000)
                titles = page.locator("[data-testid=stPlotlyChart] .gtitle").all_text_contents()
                assert len(titles) == count and title in titles, (tab, titles)
            page.get_by_role("tab", name="Ratings").click()
            page.locator("[data-testid=stPlotlyChart] .gtitle", has_text="Ratings per user").wait_for(timeout=120000)
            _wait_idle(page, timeout=120000)
        assert "Traceback" not in page.locator("body").inner_text()
        assert_no_error(page)
        page.screenshot(path=str(SHOTS / f"{path}-{width}.png"), full_page=True)
    browser.close()


def test_home_try_links_open_their_example(server, playwright):
    browser, page = _open_page(playwright, server, "")
    page.get_by_text("Test RMSE").first.wait_for(timeout=90000)
    page.get_by_role("link", name="Movies like The Godfather").click()
    page.get_by_text("Most similar to The Godfather (1972)").wait_for(timeout=60000)
    page.wait_for_url(re.compile(r"/similar\?movie=858$"), timeout=30000)
    page.goto(server)
    page.get_by_role("link", name="User 575's top picks").click()
    page.get_by_text("Top 10 for user 575").wait_for(timeout=60000)
    assert_no_error(page)
    browser.close()


def test_choices_stay_across_pages_and_try_links_still_win(server, playwright):
    """In one session, moving by the sidebar: the slice chosen on the statistics page is there
    again after a visit to another page (address included), and a home-page Try link still
    opens the slice it names."""
    browser, page = _open_page(playwright, server, "statistics?genres=Comedy")
    page.get_by_text("Slice: Comedy movies").wait_for(timeout=90000)
    nav = page.locator("[data-testid=stSidebarNavLink]")
    nav.filter(has_text="Similar movies").click()
    page.get_by_text("Most similar to").first.wait_for(timeout=60000)
    nav.filter(has_text="Dataset statistics").click()
    page.get_by_text("Slice: Comedy movies").wait_for(timeout=60000)
    page.wait_for_url(re.compile(r"/statistics\?genres=Comedy$"), timeout=30000)
    nav.filter(has_text="Home").click()
    page.get_by_role("link", name="Film-Noir of the 1940s, in numbers").click()
    page.get_by_text("Slice: Film-Noir movies released 1940–1949").wait_for(timeout=60000)
    assert not page.get_by_text("Slice: Comedy movies").count()
    assert_no_error(page)
    browser.close()


def test_delete_a_saved_model_after_confirming(server, playwright, real_model):
    """Model page, Saved models: Delete… asks in a dialog, and only its Delete removes the folder."""
    import shutil

    root, current = real_model[0], real_model[1].name
    shutil.copytree(root / current, root / "als-19990101-000000-0001")
    browser, page = _open_page(playwright, server, "model")
    page.get_by_text("Current model:").wait_for(timeout=90000)
    page.get_by_role("tab", name="Saved models").click()
    _wait_idle(page)
    assert _grid_rows(page, nth=-1) == 2  # the saved-models table: both models
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="als-19990101-000000-0001").click()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("dialog").get_by_text("Delete als-19990101-000000-0001 for good?").wait_for(timeout=30000)
    assert (root / "als-19990101-000000-0001").exists()
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("Deleted als-19990101-000000-0001 (").wait_for(timeout=30000)
    assert not (root / "als-19990101-000000-0001").exists() and (root / current).exists()
    assert page.get_by_role("combobox", name="Model").input_value() == current  # not the deleted name
    browser.close()


def test_statistics_slice_from_a_shared_link(server, playwright, real_data):
    from engine.data.stats import Slice, compute_stats

    want = compute_stats(real_data, part=Slice(genres=("Film-Noir",), released=(1940, 1949))).counts
    browser, page = _open_page(playwright, server, "statistics?genres=Film-Noir&released=1940-1949")
    page.get_by_text("Slice: Film-Noir movies released 1940–1949").wait_for(timeout=90000)
    _wait_idle(page, timeout=120000)
    ratings = page.locator("[data-testid=stMetric]", has_text="Ratings").first
    assert ratings.locator("[data-testid=stMetricValue]").inner_text() == f"{want['ratings']:,}"
    page.screenshot(path=str(SHOTS / "statistics-slice.png"), full_page=True)
    with page.expect_download() as download:  # the slice's statistics, as `engine stats --json` prints them
        page.get_by_role("button", name="Download as JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["slice"] == "Film-Noir movies released 1940–1949" and saved["counts"] == want
    page.get_by_role("button", name="Show everything").click()
    page.wait_for_url(re.compile(r"/statistics$"), timeout=30000)
    page.get_by_text(f"{len(real_data.ratings):,}", exact=True).first.wait_for(timeout=30000)
    assert not page.get_by_text("Slice:").count()
    browser.close()


def test_recommendations_user_575(server, playwright):
    browser, page = _open_page(playwright, server, "recommendations", height=1000)
    page.get_by_text("Top 10 for user 575").wait_for(timeout=90000)
    _step_slider(page, -5)  # "How many": 10 -> 5
    page.get_by_text("Top 5 for user 575").wait_for(timeout=30000)
    _wait_idle(page)
    assert _grid_rows(page, expect=5) == 5  # the heading can update before the grid is redrawn
    # change the user and time the update
    t0 = time.perf_counter()
    page.get_by_role("button", name="User 232").click()
    page.get_by_text("Top 5 for user 232").wait_for(timeout=30000)
    _wait_idle(page)
    TIMINGS["recommendation_update_s"] = round(time.perf_counter() - t0, 3)
    assert _grid_rows(page, expect=5) == 5
    # top picks are the default order; the sidebar switches to predicted rating
    page.get_by_text(ORDER_NOTES["picks"]).wait_for(timeout=30000)
    page.locator("[data-testid=stSidebar]").get_by_text("Highest predicted rating", exact=True).click()
    page.get_by_text(ORDER_NOTES["rating"]).wait_for(timeout=30000)
    _wait_idle(page)
    assert _grid_rows(page, expect=5) == 5
    page.screenshot(path=str(SHOTS / "recommendations-232.png"), full_page=True)
    browser.close()


def test_similar_movies_from_a_shared_link(server, playwright):
    # a shared link naming the movie by title; the page puts its id in the address
    browser, page = _open_page(playwright, server, "similar?movie=the%20godfather", height=1000)
    page.get_by_role("heading", name=re.compile("Similar movies")).wait_for(timeout=90000)
    _wait_idle(page)
    page.get_by_text("Most similar to The Godfather (1972)").wait_for(timeout=30000)
    page.wait_for_url(re.compile(r"/similar\?movie=858$"), timeout=30000)
    _step_slider(page, -5)  # "How many": 10 -> 5
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stDataFrame] [role=grid]')?.getAttribute('aria-rowcount') === '6'",
        timeout=30000,
    )
    assert _grid_rows(page) == 5
    page.screenshot(path=str(SHOTS / "similar-link.png"), full_page=True)
    browser.close()


def test_new_user_ratings_survive_reload(server, playwright, real_model):
    browser, page = _open_page(playwright, server, "recommendations", height=1100)
    page.get_by_text("Top 10 for user 575").wait_for(timeout=90000)
    page.get_by_text("Me (new user)", exact=True).click()
    page.get_by_text("Rate movies you know").wait_for()
    # typed as people write titles: MovieLens stores "Matrix, The (1999)", "Godfather, The (1972)"
    for count, (title, found) in enumerate(
        (
            ("Toy Story (1995)", "Toy Story (1995)"),
            ("The Matrix", "The Matrix (1999)"),
            ("the godfather", "The Godfather (1972)"),
        ),
        start=1,
    ):
        box = page.get_by_label("Find a movie by title")
        box.fill(title)
        box.press("Enter")
        page.wait_for_function(  # the search drew its pick (shown as text, or as the value of its input)
            "([found]) => { const pick = document.querySelector('.st-key-rate_pick');"
            " return !!pick && (pick.innerText.includes(found) ||"
            " [...pick.querySelectorAll('input')].some(i => i.value.includes(found))); }",
            arg=[found],
            timeout=30000,
        )
        _wait_idle(page)
        page.locator(".st-key-rate_stars").get_by_role("radio", name="5 out of 5 stars").click()
        _wait_idle(page)
        page.get_by_role("button", name="Save rating").click()
        page.get_by_text(f"Your ratings ({count})").wait_for(timeout=30000)
        # The heading can be redrawn before the rows under it: wait for this movie's row.
        page.locator("[data-testid=stText]", has_text=title.split(" (")[0]).first.wait_for(timeout=30000)
        _wait_idle(page)
    page.get_by_text("Your ratings (3)").wait_for(timeout=30000)
    # one click in the quick-start grid, on the most-watched movie not rated yet (its first card)
    from engine.data.movielens import readable_title
    from engine.recommender.serving import RecommenderIndex

    index = RecommenderIndex.load(real_model[1])
    top = int(index.popular_to_rate([1, 2571, 858], 1)["movieId"].iloc[0])  # not Toy Story, Matrix, Godfather
    title = readable_title(index.movies.set_index("movieId").loc[top, "title"], with_year=False)
    card = page.locator("[data-testid=stVerticalBlock]", has_text=title).last  # the innermost block: the card
    card.get_by_role("radio", name="4 out of 5 stars").click()
    page.get_by_text("Your ratings (4)").wait_for(timeout=30000)
    page.locator("[data-testid=stText]", has_text=title).first.wait_for(timeout=30000)
    _wait_idle(page)
    assert _grid_rows(page) == 10
    page.screenshot(path=str(SHOTS / "new-user.png"), full_page=True)
    assert "profile=guest" in page.url  # the address names the profile: a reload comes back to it
    page.reload()
    page.get_by_text("Your ratings (4)").wait_for(timeout=90000)
    # the rows are drawn just after their heading: wait for them rather than read the page at once
    page.get_by_text("Toy Story (1995)", exact=True).first.wait_for(timeout=30000)
    # an IMDb export through the browser's file picker: Toy Story is kept at 5 (rated above), Pulp Fiction joins
    page.get_by_text("Import or export ratings").click()
    imdb = "Const,Your Rating,Title,Year\ntt0114709,2,Toy Story,1995\ntt0110912,8,Pulp Fiction,1994\n"
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
        files=[{"name": "imdb-ratings.csv", "mimeType": "text/csv", "buffer": imdb.encode()}]
    )
    page.get_by_role("button", name="Import", exact=True).click(timeout=30000)
    page.get_by_text("Your ratings (5)").wait_for(timeout=30000)
    page.get_by_text(re.compile(r"1 added, 0 replaced, 1 already rated kept")).wait_for(timeout=30000)
    _wait_idle(page)
    expander = page.locator("[data-testid=stExpander] details", has_text="Import or export ratings")
    if expander.get_attribute("open") is None:  # drawn closed after the rerun: open it again
        page.get_by_text("Import or export ratings").click()
    page.get_by_role("button", name=re.compile("Download my ratings")).wait_for(state="visible", timeout=30000)
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("Download my ratings")).click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "movieId,imdbId,title,year,rating" and len(lines) == 6
    assert "1,0114709,Toy Story,1995,5" in lines and "296,0110912,Pulp Fiction,1994,4" in lines
    page.screenshot(path=str(SHOTS / "ratings-import.png"), full_page=True)
    browser.close()


def test_live_webcam_reads_happy(server, playwright, fer_zip, tmp_path):
    """Chromium's fake camera plays a Y4M of a happy dataset face; the page must say happy."""
    from engine.emotion.detector import EmotionRecognizer
    from engine.emotion.frames import face_frame, write_y4m

    frame = face_frame(fer_zip, "happy", recognizer=EmotionRecognizer.load())
    video = write_y4m(tmp_path / "happy.y4m", [frame], fps=15, repeat=45)  # 3 s, looped by Chromium
    browser, page = _webcam_page(playwright, server, video)
    page.get_by_role("heading", name=re.compile("Mood from your face")).wait_for(timeout=90000)
    frame_el = page.frame_locator("iframe[title*='streamlit_webrtc']").first
    frame_el.get_by_role("button", name="START").click(timeout=60000)
    page.get_by_text(re.compile(r"Feeling happy\? Try these")).first.wait_for(timeout=90000)
    assert page.locator("h2", has_text="happy").count() >= 1
    # the live loop keeps going: the frames/s line changes again after the first result
    fps = page.get_by_text(re.compile(r"frames/s processed")).first
    first = fps.inner_text()
    page.wait_for_function(
        "([before]) => { const m = document.body.innerText.match(/.*frames\\/s processed.*/);"
        " return m && m[0] !== before; }",
        arg=[first],
        timeout=60000,
    )
    assert_no_error(page)
    fps_text = fps.inner_text()
    TIMINGS["webcam_fps"] = float(re.search(r"([\d.]+) frames/s", fps_text).group(1))
    body = page.locator("body").inner_text()
    assert re.search(r"Comedy|Romance", body)
    page.screenshot(path=str(SHOTS / "emotion-live.png"), full_page=True)
    # The live loop runs last: the other tabs are drawn while the camera plays.
    page.get_by_role("tab", name="About the model").click()
    page.get_by_text("FER2013 test accuracy").first.wait_for(timeout=30000)
    page.get_by_role("tab", name="Live webcam").click()
    frame_el.get_by_role("button", name="STOP").click()
    browser.close()
