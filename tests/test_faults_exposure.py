"""An exposed server: one training/tuning job at a time, and the admin password (issue 23, item 10)."""

from __future__ import annotations

import threading

import pytest
from streamlit.testing.v1 import AppTest

from engine.jobs import AdminGate, JobBusy, JobSlot
from test_app import APP, app_env, no_exception, open_page  # noqa: F401  (fixture)


def test_second_job_is_told_to_wait_with_the_running_ones_progress():
    slot = JobSlot()
    started, release, seen = threading.Event(), threading.Event(), []

    def first():
        with slot.run("Tuning", lambda f, m: seen.append((f, m))) as progress:
            progress(0.4, "fit 2 of 5")
            started.set()
            release.wait(30)

    worker = threading.Thread(target=first)
    worker.start()
    assert started.wait(30)
    with pytest.raises(JobBusy, match=r"Tuning is running .*40% done: fit 2 of 5"):
        with slot.run("Training"):
            pytest.fail("a second job ran beside the first")
    release.set()
    worker.join(30)
    assert seen == [(0.4, "fit 2 of 5")] and slot.state() is None
    with pytest.raises(ZeroDivisionError):  # a job that fails frees the slot too
        with slot.run("Training"):
            1 / 0
    with slot.run("Training") as progress:
        progress(0.1, "splitting")
        assert slot.state().what == "Training"


def test_many_sessions_starting_jobs_at_once_run_one():
    slot, running, most, lock = JobSlot(), [0], [0], threading.Lock()
    barrier = threading.Barrier(8)
    outcomes = []

    def visitor():
        barrier.wait()
        try:
            with slot.run("Tuning"):
                with lock:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                threading.Event().wait(0.2)
                with lock:
                    running[0] -= 1
            outcomes.append("ran")
        except JobBusy:
            outcomes.append("told to wait")

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1 and "ran" in outcomes and len(outcomes) == 8


def test_admin_gate_slows_down_guessing():
    gate = AdminGate("s3cret", max_failures=3, window=60, lockout=30)
    assert not AdminGate("").required and gate.required
    assert gate.check("s3cret", now=0)
    assert not gate.check("a", now=1) and not gate.check("b", now=2) and not gate.check("c", now=3)
    with pytest.raises(PermissionError, match="Too many wrong passwords"):
        gate.check("s3cret", now=10)  # locked: even the right one waits
    assert gate.check("s3cret", now=40)


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_admin_password_guards_tuning_training_and_model_switching(app_env, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "correct horse")
    at = open_page("pages/model.py")
    no_exception(at)
    assert "Run the grid search" not in _buttons(at)
    assert not [b for b in at.button if b.key in ("use_model", "ask_delete_model")]
    assert at.dataframe, "the saved models are still shown, read-only"
    assert any("admin password" in i.value for i in at.info)
    at.text_input(key="admin_pw_tune and train models").input("wrong")
    at.button[0].click()  # the form's Unlock
    at.run()
    assert any("Wrong password" in e.value for e in at.error)
    assert "Run the grid search" not in _buttons(at)
    at.text_input(key="admin_pw_tune and train models").input("correct horse")
    next(b for b in at.button if b.label == "Unlock").click().run()
    no_exception(at)
    assert "Run the grid search" in _buttons(at)
    assert at.button(key="use_model") is not None  # unlocked for the whole session


def test_admin_password_guards_first_run_training(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_PASSWORD", "correct horse")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    at = open_page("pages/home.py")
    no_exception(at)
    assert "Train the default model" not in _buttons(at)


def test_a_running_job_is_shown_and_blocks_another(app_env):
    from pages._common import job_slot

    open_page("pages/model.py")  # the server's slot exists once a page ran
    with job_slot().run("Tuning") as progress:
        progress(0.25, "fit 3 of 12")
        at = open_page("pages/model.py")
        no_exception(at)
        assert any("Tuning is running" in i.value and "25% done: fit 3 of 12" in i.value for i in at.info)
        assert next(b for b in at.button if b.label == "Run the grid search").disabled


def test_one_upload_limit_said_the_same_everywhere():
    """The server's cap is the largest uploader's own limit: a file the ratings uploader accepts
    never meets the server's raw 'Request failed with status code 413'."""
    import re
    import tomllib

    from conftest import REPO
    from engine.people.rating_files import MAX_BYTES

    server_mb = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    limits = {}
    for page in (REPO / "pages").glob("*.py"):
        for call in re.findall(r"file_uploader\((.*?)\)\n", page.read_text(), re.S):
            assert "max_upload_size=" in call, f"{page.name}: an uploader without its own limit"
            limits[page.name] = call
    assert set(limits) == {"emotion.py", "recommendations.py"}
    assert server_mb * 2**20 == MAX_BYTES  # the ratings import's limit is the server's
    photo_mb = int(re.search(r"^PHOTO_MB = (\d+)", (REPO / "pages" / "emotion.py").read_text(), re.M).group(1))
    assert 0 < photo_mb <= server_mb
