"""Faults in the ratings store (issue 23, items 1-3): concurrent sessions and processes lose
nothing, and a locked, foreign or damaged database file is a clear message naming the file."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading

import pytest

from engine.people.user_ratings import RatingStore, RatingStoreError
from test_app import app_env, no_exception, open_page  # noqa: F401 - app_env is a fixture

THREADS, OPS = 3, 1200  # each op is one to five committed ratings or hides: ~9,000 writes in all


def _session(store_for, t: int, start: threading.Barrier, errors: list, expected: dict) -> None:
    """One browser session's writes, as the pages make them; what was acknowledged goes in ``expected``."""
    mine, hidden, shared = {}, set(), {}
    expected[t] = mine, hidden, shared
    try:
        start.wait()
        for i in range(OPS):
            store = store_for()  # what every page does on every run
            stars = 0.5 + (i * 7 + t) % 10 / 2
            if i % 4 == 0:
                store.set_rating(f"p{t}", i, stars)
                mine[i] = stars
            elif i % 4 == 1:
                pairs = [(t * 100_000 + i * 10 + k, stars) for k in range(5)]
                store.import_ratings("shared", pairs)
                shared.update(pairs)
            elif i % 4 == 2:
                store.hide(f"p{t}", i)
                hidden.add(i)
                assert len(store.ratings(f"p{t}")) == len(mine)  # a page's read between writes
            elif (i // 4) % 3 == 0:
                assert store.remove_rating(f"p{t}", i - 3)
                del mine[i - 3]
            else:
                assert store.unhide(f"p{t}", i - 1)
                hidden.discard(i - 1)
        conn = store_for()._db
        expected[t] = (
            mine,
            hidden,
            shared,
            (conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]),
        )
    except BaseException as exc:  # noqa: BLE001 - every error counts as a failure of the test
        errors.append(f"session {t}: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_three_sessions_writing_at_once_lose_nothing(tmp_path):
    """Three sessions share the pages' cached store: every acknowledged write is there, no error."""
    from pages._common import rating_store

    path = str(tmp_path / "ratings.sqlite")
    errors, expected = [], {}
    start = threading.Barrier(THREADS)
    threads = [
        threading.Thread(target=_session, args=(lambda: rating_store(path), t, start, errors, expected))
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rating_store(path) is rating_store(path)  # the same object the sessions used
    with RatingStore(path) as check:
        shared = {}
        for t, (mine, hidden, theirs, (journal, synchronous)) in expected.items():
            assert (journal, synchronous) == ("wal", 2)  # WAL and synchronous=FULL on every connection
            assert dict(check.ratings(f"p{t}")) == mine
            assert set(check.hidden(f"p{t}")) == hidden
            shared.update(theirs)
        assert dict(check.ratings("shared")) == shared and len(shared) == THREADS * OPS // 4 * 5
        assert check.profiles() == ["p0", "p1", "p2", "shared"]
        assert check._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


TRIALS = 30


def _new_profile_writer(folder: str, worker: int, start, errors) -> None:
    """A process rating under a profile that another process creates at the same moment."""
    for trial in range(TRIALS):
        path = f"{folder}/t{trial}.sqlite"
        try:
            start.wait(timeout=120)
            # odd trials: the database file is new too, so both processes also create its tables
            with RatingStore(path) as store:
                store.set_rating("newcomer", worker + 1, 4.5 - worker)
                store.hide("newcomer", 100 + worker)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.put(f"trial {trial}, process {worker}: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_two_processes_creating_the_same_profile(tmp_path):
    for trial in range(0, TRIALS, 2):  # even trials: the file exists, only the profile is new
        RatingStore(tmp_path / f"t{trial}.sqlite").close()
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_new_profile_writer, args=(str(tmp_path), w, start, errors)) for w in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    for proc in procs:
        if proc.is_alive():  # stuck: fail rather than leave it running
            proc.kill()
            proc.join()
    assert [proc.exitcode for proc in procs] == [0, 0]
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    for trial in range(TRIALS):
        with RatingStore(tmp_path / f"t{trial}.sqlite") as store:
            assert store.profiles() == ["newcomer"]
            assert dict(store.ratings("newcomer")) == {1: 4.5, 2: 3.5}, trial
            assert sorted(store.hidden("newcomer")) == [100, 101], trial


def test_a_database_locked_too_long_is_a_clear_error_and_loses_nothing(tmp_path):
    db = tmp_path / "ratings.sqlite"
    store = RatingStore(db, lock_timeout=0.2)
    store.set_rating("ana", 1, 4.0)
    store.hide("ana", 9)
    other = sqlite3.connect(db, isolation_level=None)  # another program, writing and not letting go
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO profiles(name, created_at) VALUES ('theirs', 0)")
    writes = {
        "set_rating": lambda: store.set_rating("ana", 2, 3.0),
        "new profile": lambda: store.set_rating("bo", 2, 3.0),
        "import_ratings": lambda: store.import_ratings("ana", [(3, 5.0), (4, 1.0)]),
        "remove_rating": lambda: store.remove_rating("ana", 1),
        "hide": lambda: store.hide("ana", 5),
        "unhide": lambda: store.unhide("ana", 9),
    }
    for what, write in writes.items():
        with pytest.raises(RatingStoreError) as err:
            write()
        message = str(err.value)
        assert str(db) in message and "locked by another program" in message and "0.2 s" in message, what
        assert "try again" in message.lower(), what
    # reading goes on meanwhile (WAL), and none of the refused writes went in halfway
    assert store.ratings("ana") == [(1, 4.0)] and store.hidden("ana") == [9] and store.profiles() == ["ana"]
    other.execute("ROLLBACK")
    other.close()
    assert store.import_ratings("ana", [(3, 5.0), (4, 1.0)]) == {"added": 2, "replaced": 0, "kept": 0}
    assert dict(store.ratings("ana")) == {1: 4.0, 3: 5.0, 4: 1.0}
    store.close()


def _damaged(path):
    """A ratings database whose data pages were overwritten (a bad disk, a half-copied file)."""
    with RatingStore(path) as store:
        store.import_ratings("ana", [(m, 4.0) for m in range(1, 3000)])
    data = bytearray(path.read_bytes())
    data[3 * 4096 :] = b"\x07" * (len(data) - 3 * 4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["random bytes", "a CSV file", "damaged", "a folder"])
def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path, kind):
    db = tmp_path / "ratings.sqlite"
    if kind == "random bytes":
        db.write_bytes(random.Random(0).randbytes(20_000))
    elif kind == "a CSV file":
        db.write_text("movieId,rating\n1,4.0\n2,3.5\n")
    elif kind == "damaged":
        _damaged(db)
    else:
        db.mkdir()
    before = db.read_bytes() if db.is_file() else None
    with pytest.raises(RatingStoreError) as err:
        with RatingStore(db) as store:
            store.ratings("ana")
    message = str(err.value)
    assert str(db) in message and "RATINGS_DB" in message, message
    if kind == "a folder":
        assert "Cannot write the ratings database" in message
    else:
        assert "is not a SQLite database, or it is damaged" in message and "move the file away" in message
        assert db.read_bytes() == before  # the file is left as it was for its owner to look at


@pytest.mark.spark
@pytest.mark.slow
def test_the_pages_show_a_bad_ratings_file_as_a_message(app_env, monkeypatch, tmp_path):
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(random.Random(1).randbytes(10_000))
    monkeypatch.setenv("RATINGS_DB", str(bad))
    at = open_page("pages/recommendations.py")
    at.segmented_control(key="rec_mode").set_value("Me (new user)").run()
    no_exception(at)
    assert len(at.error) == 1, [e.value for e in at.error]
    shown = at.error[0].value
    assert shown.startswith(f"Reading your ratings failed: {bad} is not a SQLite database"), shown
    assert "move the file away" in shown and "RATINGS_DB" in shown
    at.segmented_control(key="rec_mode").set_value("Movie night").run()  # MovieLens users still work
    no_exception(at)
    assert len(at.error) == 1 and "Reading the saved profiles failed" in at.error[0].value
    at.multiselect(key="group_members").set_value([1, 2]).run()
    no_exception(at)
    assert len(at.dataframe[0].value) > 0
    emotion = open_page("pages/emotion.py")
    no_exception(emotion)
    assert len(emotion.error) == 1 and str(bad) in emotion.error[0].value
