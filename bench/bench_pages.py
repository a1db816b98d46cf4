"""Every page of the app in a real browser, pointed at a large release and its model: seconds to draw.

    python bench/bench_pages.py data/synthetic/ml-synth-25m --scratch data/bench/scale/ml-synth-25m

``--scratch`` is the folder ``bench/bench_scale.py`` used for that release (its ``data/`` holds
the prepared Parquet, its ``models/`` the trained model), so nothing is prepared or trained here.
The app runs as ``make run`` runs it (the emotion model prepared, ``streamlit run``, Spark started in
the background, the current model's index loaded in the background). Once the sidebar says Spark is ready, each page
is opened as a bookmark opens it, in a fresh browser (a new session), and timed until it is fully
drawn (the script idle, no skeleton, every chart drawn; the checks of tests/test_browser.py);
``--one-browser`` keeps one browser for every visit (its cache warm, as a returning visitor's). Every
page is visited twice: the first visit fills the server's caches (the statistics of a slice, the
movie table), the second is what the next visitor gets. Issue 25's target: each page <= 5 s.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# page address -> its heading; statistics also as a shared link to a slice that narrows genres
PAGES = {
    "": "Movie Recommender",
    "statistics": "Dataset statistics",
    "statistics?genres=Comedy,Horror&rated=2005-2015": "Dataset statistics",
    "recommendations": "Recommendations",
    "similar": "Similar movies",
    "emotion": "Mood from your face",
    "model": "Model",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("release", type=Path, help="the GroupLens folder or zip")
    ap.add_argument("--scratch", type=Path, required=True, help="bench_scale's folder for it (data/, models/)")
    ap.add_argument("--visits", type=int, default=2)
    ap.add_argument(
        "--one-browser",
        action="store_true",
        help="every visit in one browser (its cache warm, as a returning visitor's) instead of a fresh one each",
    )
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from conftest import cli_env
    from test_browser import _browser, _streamlit, _wait_idle, assert_no_error

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = cli_env(
        MOVIELENS_DATA=args.release.resolve(),
        ENGINE_DATA_DIR=(args.scratch / "data").resolve(),
        MODEL_DIR=(args.scratch / "models").resolve(),
        RATINGS_DB=tmp / "ratings.sqlite",
        SPARK_CHECKPOINT_DIR=tmp / "ckpt",
    )
    # As `make run`: the emotion model's LiteRT conversion into this data folder's cache first (once per
    # model file; without it the webcam page's first visit converts, ~15 s).
    import subprocess

    subprocess.run([sys.executable, "-m", "engine.emotion", "prepare"], env=env, check=True, capture_output=True)
    t_server = time.perf_counter()
    with _streamlit(env) as server, sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)  # the first page view starts Spark and the index load
        page.get_by_text(re.compile("Spark: ready")).wait_for(timeout=600_000)
        print(f"Spark ready {time.perf_counter() - t_server:.1f} s after the server was started")
        browser.close()
        times: dict[str, list[float]] = {}
        shared = _browser(pw) if args.one_browser else None
        for visit in range(args.visits):
            for path, heading in PAGES.items():
                browser = shared or _browser(pw)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(f"{server}/{path}")
                page.get_by_role("heading", name=re.compile(heading)).first.wait_for(timeout=300_000)
                _wait_idle(page, timeout=300_000)
                seconds = time.perf_counter() - t0
                assert "Traceback" not in page.locator("body").inner_text()
                assert_no_error(page)
                times.setdefault(path or "home", []).append(seconds)
                print(f"  visit {visit + 1}: {path or 'home':<50} {seconds:6.2f} s", flush=True)
                page.close()
                if shared is None:
                    browser.close()
    how = "one browser for every visit" if args.one_browser else "a fresh browser for each visit"
    print(f"\n{args.release.name}: seconds until each page is fully drawn ({how}; target <= 5 s)")
    print(f"  {'page':<50}" + "".join(f"{f'visit {v + 1}':>10}" for v in range(args.visits)))
    for path, seconds in times.items():
        print(f"  {path:<50}" + "".join(f"{s:10.2f}" for s in seconds))
    worst = max(max(s) for s in times.values())
    print(f"  slowest: {worst:.2f} s ({'met' if worst <= 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
