"""SQLite rating store: persistence across connections and across a killed writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.people.user_ratings import USER_ID_OFFSET, RatingStore


def test_round_trip_and_edit(tmp_path):
    db = tmp_path / "r.sqlite"
    with RatingStore(db) as store:
        store.set_rating("ana", 1, 4.5)
        store.set_rating("ana", 2, 3.0)
        store.set_rating("ana", 1, 2.0)  # edit
        store.set_rating("bo", 3, 5.0)
        assert store.remove_rating("bo", 3) and not store.remove_rating("bo", 3)
    with RatingStore(db) as store:  # reopened connection
        assert dict(store.ratings("ana")) == {1: 2.0, 2: 3.0}
        assert store.ratings("bo") == [] and store.ratings("nobody") == []
        assert store.profiles() == ["ana", "bo"]
        df = store.all_ratings()
        assert set(df["userId"]) == {store.user_id("ana")} and store.user_id("ana") > USER_ID_OFFSET
        mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


@pytest.mark.parametrize("bad", [0.0, 5.5, 3.3])
def test_rejects_off_scale(tmp_path, bad):
    with RatingStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(ValueError, match="off the scale"):
            store.set_rating("ana", 1, bad)
        with pytest.raises(ValueError, match="empty"):
            store.set_rating("  ", 1, 4.0)


WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
from engine.people.user_ratings import RatingStore
store = RatingStore({db!r})
for i in range(1, 100000):
    store.set_rating("writer", i, 0.5 + (i % 10) / 2)
    print(i, flush=True)
"""


def test_survives_kill_9(tmp_path):
    db = tmp_path / "r.sqlite"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(repo=repo, db=str(db))], stdout=subprocess.PIPE, text=True
    )
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the writer must have been killed mid-stream, not have died before writing anything
    assert acknowledged >= 200, f"the writer acknowledged only {acknowledged} writes before it ended"
    with RatingStore(db) as store:
        saved = dict(store.ratings("writer"))
    # every write that returned before the kill is there, intact
    assert set(range(1, acknowledged + 1)) <= set(saved)
    assert all(saved[i] == 0.5 + (i % 10) / 2 for i in range(1, acknowledged + 1))
    import sqlite3

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_not_interested_is_kept_per_profile_until_shown_again(tmp_path):
    with RatingStore(tmp_path / "r.sqlite") as store:
        assert store.hidden("me") == [] and not store.unhide("me", 1)
        store.hide("me", 5)
        store.hide("me", 7)
        store.hide("me", 5)  # twice: still once
        assert store.hidden("me") == [7, 5] and store.hidden("you") == []
        assert store.ratings("me") == []  # hiding is not rating
    with RatingStore(tmp_path / "r.sqlite") as again:  # kept across connections (restarts)
        assert again.hidden("me") == [7, 5]
        assert again.unhide("me", 5) and not again.unhide("me", 5)
        assert again.hidden("me") == [7]
