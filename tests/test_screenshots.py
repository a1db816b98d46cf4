"""Every page at 1280x800 in the dark and the light theme, in Chromium (`make screenshots`).

With ``SCREENSHOTS_DIR`` set, the app serves the real data and model and each page is saved as
``<page>-<theme>.png`` there (``make screenshots`` writes docs/screenshots/ for the README).
Without it (``make test``), the generated release and its small model are served and the same
pages are only checked: drawn without an error, no button label cut off, the saved-models table
without a horizontal scroll bar, and the statistics slice applied once, by *Apply*, however many
key presses moved its slider. Streamlit takes the theme from ``STREAMLIT_THEME_*`` variables,
which override .streamlit/config.toml (the dark theme the app ships with).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import MISSING_CHROMIUM, cli_env, has_chromium, need
from test_browser import ARTIFACTS, _browser, _streamlit, _wait_idle, assert_no_error

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

WIDTH, HEIGHT = 1280, 800
THEMES = {
    "dark": {},  # .streamlit/config.toml
    "light": {
        "STREAMLIT_THEME_BASE": "light",
        "STREAMLIT_THEME_BACKGROUND_COLOR": "#ffffff",
        "STREAMLIT_THEME_SECONDARY_BACKGROUND_COLOR": "#f0f2f6",
        "STREAMLIT_THEME_TEXT_COLOR": "#262730",
    },
}
# page -> (its address, heading, text drawn once the page has finished)
PAGES = {
    "home": ("", "Movie Recommender", "Test RMSE"),
    "statistics": ("statistics", "Dataset statistics", "Most-rated and best-rated movies"),
    "recommendations": ("recommendations", "Recommendations", "Top 10 for user"),
    "similar": ("similar", "Similar movies", "Most similar to"),
    "emotion": ("emotion", "Mood from your face", "Press START"),
    "model": ("model", "Model", "Current model:"),
}
# Every text a spinner showed, from the first moment of each page load (a cold load must say what it does).
SPINNER_LOG = """
window.__spinners = [];
new MutationObserver(() => document.querySelectorAll('[data-testid=stSpinner]').forEach(s => {
    const t = s.innerText.trim(); if (t && !window.__spinners.includes(t)) window.__spinners.push(t); }))
  .observe(document, {subtree: true, childList: true, characterData: true});
"""


def _out_dir() -> Path | None:
    where = os.environ.get("SCREENSHOTS_DIR")
    return Path(where) if where else None


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """(data, model root) to serve: the real ones for screenshots, the generated ones to check."""
    need(has_chromium(), MISSING_CHROMIUM)
    if _out_dir() is not None:
        return request.getfixturevalue("movielens_zip"), request.getfixturevalue("real_model")[0]
    return request.getfixturevalue("small_release"), request.getfixturevalue("small_model")[0]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _cut_off_buttons(page) -> list[str]:
    """Labels of visible buttons whose text does not fit (drawn with an ellipsis or clipped)."""
    return page.evaluate("""() => [...document.querySelectorAll('button')]
        .filter(b => b.offsetParent !== null)
        .flatMap(b => [...b.querySelectorAll('p, span')].filter(e => e.scrollWidth > e.clientWidth + 1)
                                                       .map(() => b.innerText.trim()))""")


def _grid_scrolls_sideways(page) -> list[bool]:
    """Per visible table: whether its columns are wider than the table (a horizontal scroll bar)."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=stDataFrame] .dvn-scroller')]
        .filter(s => s.offsetParent !== null).map(s => s.scrollWidth > s.clientWidth + 1)""")


def _slice_by_keyboard(page) -> None:
    """Five key presses on "Released" rerun nothing (they reran the whole page each, 44 s in all);
    Apply then applies the move once and puts it in the address."""
    page.get_by_text("Most-rated and best-rated movies").wait_for(timeout=60000)
    assert not page.get_by_text("Slice:").count()
    page.evaluate("""() => { window.__runs = 0;
        const app = document.querySelector('[data-testid=stApp]');
        new MutationObserver(() => { if (app.dataset.testScriptState === 'running') window.__runs++; })
            .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }""")
    slider = page.locator("[data-testid=stSidebar]").get_by_role("slider").first
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text(re.compile(r"Slice: movies released \d{4}")).wait_for(timeout=60000)
    page.wait_for_url(re.compile(r"released=\d{4}-\d{4}"), timeout=30000)
    _wait_idle(page)
    assert page.evaluate("window.__runs") == 1  # one run for five key presses and Apply


@pytest.mark.parametrize("theme", list(THEMES))
def test_every_page_at_1280_in_both_themes(served, playwright, tmp_path, theme):
    data, models = served
    out = _out_dir()
    env = cli_env(
        MOVIELENS_DATA=data,
        MODEL_DIR=models,
        RATINGS_DB=tmp_path / "ratings.sqlite",
        SPARK_CHECKPOINT_DIR=tmp_path / "ckpt",
        SPARK_START="on-demand",
        **THEMES[theme],
    )
    # on-demand: no JVM starting behind the pictures (its sidebar line would rerun every 2 s while it starts)
    with _streamlit(env) as url:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.add_init_script(SPINNER_LOG)
        for path, (address, heading, ready) in PAGES.items():
            page.goto(f"{url}/{address}")
            page.get_by_role("heading", name=re.compile(heading)).first.wait_for(timeout=120000)
            page.get_by_text(ready).first.wait_for(timeout=180000)
            _wait_idle(page, timeout=180000)
            assert "Traceback" not in page.locator("body").inner_text()
            assert not _cut_off_buttons(page), (path, _cut_off_buttons(page))
            if path == "statistics" and out is not None:  # the real data's cold load says what it does
                assert any("Reading MovieLens latest-small" in s for s in page.evaluate("window.__spinners"))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out / f"{path}-{theme}.png"))
                (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)  # the whole page, to look at:
                page.set_viewport_size({"width": WIDTH, "height": 4000})  # the app scrolls inside its own
                _wait_idle(page, timeout=60000)  # element, so full_page cannot
                page.screenshot(path=str(ARTIFACTS / "screenshots" / f"{path}-{theme}-tall.png"))
                page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
            if path == "model":
                page.get_by_role("tab", name="Saved models").click()
                page.locator("[data-testid=stTabPanel]:visible [data-testid=stDataFrame]").first.wait_for(timeout=30000)
                _wait_idle(page)
                assert _grid_scrolls_sideways(page) == [False], "the saved-models table scrolls sideways"
                if out is not None:
                    page.screenshot(path=str(out / f"model-saved-{theme}.png"))
            if path == "statistics" and theme == "dark":
                _slice_by_keyboard(page)
        assert_no_error(page)
        browser.close()
