"""The live webcam left on: a still face and a noisy face for minutes each (issue 24).

Chromium's fake camera plays a Y4M of a FER2013 face; the page must never show an error, its
label and frames/s must keep updating, the server's memory must stay flat after the first
minute, and STOP then START must work again. ``SOAK_SECONDS`` sets the time per video
(120 in ``make test``; ``make soak`` runs an hour each).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from conftest import MISSING_CHROMIUM, REPO, has_chromium, need
from test_browser import _app_env, _free_port, _webcam_page, assert_no_error, playwright  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
WARM_UP_S = 60          # memory is compared with what the server held after the first minute
CHECK_EVERY_S = 5
STALE_AFTER_S = 30      # the frames/s line must change at least this often


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def soak_server(real_model, movielens_zip, tmp_path_factory):
    need(has_chromium(), MISSING_CHROMIUM)
    tmp = tmp_path_factory.mktemp("soak")
    env = _app_env(real_model, movielens_zip, tmp)
    # The webcam page needs no Spark: no JVM starting beside TensorFlow's first load in this server (one CI
    # run's server, opened straight on /emotion, stopped answering while both started; not understood yet).
    env["SPARK_START"] = "on-demand"
    port = _free_port()
    log = open(tmp / "server.log", "w")     # a file, not a pipe nobody reads: an hour of logs must not block
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
                             str(port), "--server.headless", "true"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "streamlit did not become healthy"
            time.sleep(0.5)
    yield url, proc.pid, tmp / "server.log"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def face(fer_zip):
    from engine.emotion.detector import EmotionRecognizer
    from engine.emotion.frames import face_frame
    return face_frame(fer_zip, "happy", recognizer=EmotionRecognizer.load())


def _video(kind: str, face: np.ndarray, folder) -> str:
    from engine.emotion.frames import write_y4m
    if kind == "still":
        return str(write_y4m(folder / "still.y4m", [face], fps=15, repeat=45))
    rng = np.random.default_rng(0)            # a new grain on every frame, as a webcam in dim light
    frames = [np.clip(face.astype(np.int16) + rng.normal(0, 14, face.shape), 0, 255).astype(np.uint8)
              for _ in range(30)]
    return str(write_y4m(folder / "noisy.y4m", frames, fps=15))


FPS_LINE = re.compile(r"([\d.]+) frames/s processed · faces in view: (\d+)")


@pytest.mark.parametrize("kind", ["still", "noisy"])
def test_live_webcam_soak(soak_server, face, kind, playwright, tmp_path):
    url, pid, log = soak_server
    video = _video(kind, face, tmp_path)
    browser, page = _webcam_page(playwright, url, video, width=1280, height=1000)
    camera = page.frame_locator("iframe[title*='streamlit_webrtc']").first

    def started() -> str:
        camera.get_by_role("button", name="START").click(timeout=90000)
        page.get_by_text(re.compile(r"Feeling \w+\? Try these")).first.wait_for(timeout=120000)
        return page.get_by_text(FPS_LINE).first.inner_text()

    try:
        last_line, last_change = started(), time.monotonic()
        t0 = last_change
        baseline, peak, faces, checks = None, 0.0, [], 0
        while (now := time.monotonic()) - t0 < SOAK_SECONDS:
            time.sleep(CHECK_EVERY_S)   # the soak's own pace of checks (each check waits for nothing)
            now = time.monotonic()
            assert_no_error(page)
            line = page.get_by_text(FPS_LINE).first.inner_text()
            faces.append(int(FPS_LINE.search(line).group(2)))
            if line != last_line:
                last_line, last_change = line, now
            assert now - last_change < STALE_AFTER_S, f"frames/s stuck at {line!r} for {now - last_change:.0f} s"
            page.get_by_text(re.compile(r"Feeling \w+\? Try these")).first.wait_for(timeout=30000)
            rss = rss_mib(pid)
            if baseline is None and now - t0 >= WARM_UP_S:
                baseline = rss
            elif baseline is not None:
                peak = max(peak, rss)
            checks += 1
        assert baseline is not None, "the soak ended before its first minute"
        print(f"\n{kind}: {checks} checks over {SOAK_SECONDS:.0f} s; server RSS {baseline:.0f} MiB after "
              f"1 min, peak {peak:.0f} MiB later; faces in view {np.bincount(faces).tolist()}")
        assert peak <= baseline * 1.10, f"server memory grew from {baseline:.0f} to {peak:.0f} MiB"
        # STOP, then START again: the live loop comes back
        camera.get_by_role("button", name="STOP").click(timeout=30000)
        page.get_by_text("Camera is off.").wait_for(timeout=60000)
        first = started()
        page.wait_for_function("([before]) => { const m = document.body.innerText.match(/.*frames\\/s processed.*/);"
                               " return m && m[0] !== before; }", arg=[first], timeout=60000)
        assert_no_error(page)
        camera.get_by_role("button", name="STOP").click(timeout=30000)
    except BaseException:
        page.screenshot(path=str(tmp_path / f"soak-{kind}.png"), full_page=True)
        print(log.read_text()[-4000:])
        raise
    finally:
        browser.close()
