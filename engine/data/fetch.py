"""Get MovieLens: ml-latest-small from GroupLens, or a real fallback from PyPI when offline.

GroupLens first, with a progress bar and two integrity checks (the MD5 that
GroupLens publishes beside the zip, and a full CRC test of every member). When
GroupLens cannot be reached -- machines here only reach package registries --
fall back to MovieLens-100K as carried by the ``recbole==1.2.1`` wheel on PyPI
(downloaded with ``pip download --no-deps``, never installed) and convert it to
the GroupLens layout. Both land in the git-ignored data folder.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from .movielens import DataError

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
FALLBACK_PACKAGE = "recbole==1.2.1"
FALLBACK_PREFIX = "recbole/dataset_example/ml-100k/"
FALLBACK_NAME = "ml-100k-from-recbole.zip"
# ml-100k genre names -> GroupLens ml-latest names.
_GENRE_FIX = {"Children's": "Children"}

Progress = Callable[[int, int | None], None]


def _bar(done: int, total: int | None) -> None:
    if total:
        width = 30
        fill = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done / 1e6:6.2f}/{total / 1e6:.2f} MB")
    else:
        sys.stderr.write(f"\r{done / 1e6:6.2f} MB")
    sys.stderr.flush()


def download(url: str, dest: Path, progress: Progress = _bar, timeout: float = 15) -> Path:
    """Stream ``url`` to ``dest`` atomically with progress; raises ``OSError`` offline."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        done = 0
        while chunk := resp.read(1 << 16):
            out.write(chunk)
            done += len(chunk)
            progress(done, total)
    sys.stderr.write("\n")
    os.replace(tmp, dest)
    return dest


def verify_zip(path: Path, expected_md5: str | None = None) -> None:
    """MD5 (when known) and a CRC check of every member; :class:`DataError` when bad."""
    if expected_md5:
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != expected_md5:
            raise DataError(
                f"{path}: MD5 {digest} does not match the published {expected_md5}. "
                "The download is damaged: delete it and fetch again."
            )
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a valid zip ({exc}); delete it and fetch again.") from exc
    if bad:
        raise DataError(f"{path}: member {bad} fails its CRC check; delete it and fetch again.")


def fetch_grouplens(data_dir: Path, progress: Progress = _bar) -> Path:
    dest = data_dir / "ml-latest-small.zip"
    md5 = None
    try:
        with urllib.request.urlopen(GROUPLENS_URL + ".md5", timeout=15) as resp:
            md5 = resp.read().decode().split()[0].strip()
    except (urllib.error.URLError, OSError, IndexError, UnicodeDecodeError):
        log.warning("no published MD5 reachable; checking the zip's CRCs only")
    download(GROUPLENS_URL, dest, progress)
    verify_zip(dest, md5)
    return dest


def convert_recbole_ml100k(wheel: Path, dest: Path) -> Path:
    """Write MovieLens-100K from the recbole wheel as a GroupLens-layout zip."""
    with zipfile.ZipFile(wheel) as zf:
        inter = zf.read(FALLBACK_PREFIX + "ml-100k.inter").decode("utf-8")
        items = zf.read(FALLBACK_PREFIX + "ml-100k.item").decode("latin-1")
    movies_out, ratings_out = io.StringIO(), io.StringIO()
    mw = csv.writer(movies_out, lineterminator="\n")
    mw.writerow(["movieId", "title", "genres"])
    for row in list(csv.reader(io.StringIO(items), delimiter="\t"))[1:]:
        item_id, title, year, classes = (row + ["", "", "", ""])[:4]
        genres = "|".join(_GENRE_FIX.get(g, g) for g in classes.split()) or "(no genres listed)"
        mw.writerow([item_id, f"{title} ({year})" if year else title, genres])
    rw = csv.writer(ratings_out, lineterminator="\n")
    rw.writerow(["userId", "movieId", "rating", "timestamp"])
    for row in list(csv.reader(io.StringIO(inter), delimiter="\t"))[1:]:
        rw.writerow([row[0], row[1], f"{float(row[2]):.1f}", int(float(row[3]))])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("ml-100k/movies.csv", movies_out.getvalue())
        out.writestr("ml-100k/ratings.csv", ratings_out.getvalue())
        out.writestr(
            "ml-100k/README.txt",
            "MovieLens 100K (GroupLens), converted from the "
            f"{FALLBACK_PACKAGE} wheel's dataset_example. No tags or links.\n",
        )
    os.replace(tmp, dest)
    return dest


def fetch_fallback(data_dir: Path) -> Path:
    """MovieLens-100K from the recbole wheel on PyPI (pip download, not install)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, FALLBACK_PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = glob.glob(os.path.join(tmp, "recbole-*.whl"))
        if done.returncode != 0 or not wheels:
            raise DataError(
                "GroupLens is unreachable and the PyPI fallback failed too "
                f"(pip download {FALLBACK_PACKAGE}: {done.stderr.strip()[-300:]}). "
                "Copy ml-latest-small.zip by hand and set MOVIELENS_DATA to it."
            )
        return convert_recbole_ml100k(Path(wheels[0]), data_dir / FALLBACK_NAME)


def fetch(data_dir: Path, progress: Progress = _bar) -> tuple[Path, str]:
    """Get a dataset into ``data_dir``; returns (path, human description of what was used)."""
    existing = data_dir / "ml-latest-small.zip"
    if existing.exists():
        verify_zip(existing)
        return existing, "ml-latest-small (already downloaded)"
    try:
        return fetch_grouplens(data_dir, progress), "ml-latest-small from GroupLens"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        log.warning("GroupLens unreachable (%s); using MovieLens-100K from PyPI instead", exc)
    fallback = data_dir / FALLBACK_NAME
    if not fallback.exists():
        fetch_fallback(data_dir)
    return fallback, (
        f"GroupLens unreachable: using MovieLens-100K converted from the {FALLBACK_PACKAGE} wheel on PyPI"
    )
