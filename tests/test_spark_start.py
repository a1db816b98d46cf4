"""Spark starts in the background: the starter's states, the sidebar line, and the time-left helpers."""

from __future__ import annotations

import threading
import time

import pytest

from engine.jobs import Pace, format_seconds, with_eta
from engine.spark import SparkStarter, SparkUnavailable


def test_starter_reports_starting_then_ready():
    gate = threading.Event()
    starter = SparkStarter(start=lambda: gate.wait(30) and "session")
    assert starter.state == "starting" and starter.seconds() == 0.0  # not started yet
    starter.start()
    assert starter.state == "starting"  # the caller is not blocked while the JVM starts
    with pytest.raises(TimeoutError):
        starter.wait(timeout=0.05)
    gate.set()
    assert starter.wait(timeout=30) == "session"
    assert starter.state == "ready" and starter.seconds() > 0
    assert starter.start() is starter and starter.wait(1) == "session"  # started once


def test_starter_says_why_spark_is_unavailable_and_can_retry():
    outcomes = [SparkUnavailable("No Java found. Install it."), "session"]

    def start():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    starter = SparkStarter(start=start).start()
    with pytest.raises(SparkUnavailable, match="No Java found"):
        starter.wait(timeout=30)
    assert starter.state == "unavailable" and "No Java found" in starter.error
    starter.start()  # no retry unless asked
    assert starter.state == "unavailable"
    assert starter.start(retry=True).wait(timeout=30) == "session"
    assert starter.state == "ready" and starter.error is None


def test_time_left_comes_from_the_measured_pace():
    clock = iter([0.0, 30.0, 60.0]).__next__
    pace = Pace(total=10, clock=clock)
    assert pace.left() is None and pace.describe() == ""  # nothing measured: no guess
    pace.advance(1)
    assert pace.left() == pytest.approx(270.0)  # 30 s for 1 unit, 9 to go
    pace.advance(4)
    assert pace.describe() == "about 1 min left"  # 60 s for 5 units, 5 to go
    seen = []
    report = with_eta(lambda f, m: seen.append(m), clock=iter([0.0, 1.0, 8.0, 9.0]).__next__)
    report(0.02, "splitting")
    report(0.4, "fitting")
    report(1.0, "done")
    assert seen == ["splitting", "fitting · about 12 s left", "done"]
    assert [format_seconds(s) for s in (4.4, 60, 200, 3900)] == ["4 s", "1 min", "3 min 20 s", "1 h 5 min"]


@pytest.mark.spark
def test_sidebar_shows_spark_state(spark, monkeypatch, tmp_path):
    """The entry script starts Spark in the background and the sidebar says how far it got."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RATINGS_DB", str(tmp_path / "ratings.sqlite"))
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60)
    at.run()
    lines = [c.value for c in at.sidebar.caption]
    assert any(line.startswith(("⏳ Spark: starting", "✅ Spark: ready")) for line in lines), lines
    deadline = time.monotonic() + 120
    while not any("Spark: ready" in c.value for c in at.sidebar.caption):
        assert time.monotonic() < deadline, [c.value for c in at.sidebar.caption]
        time.sleep(0.2)
        at.run()
    assert not at.exception
