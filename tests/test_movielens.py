"""Loading and every validation error, on generated releases (plus the real zip)."""

from __future__ import annotations

import re
import zipfile

import pytest

from conftest import generate_movielens, write_release
from engine.data.movielens import (
    DataError,
    explode_genres,
    fold_for_search,
    load_movielens,
    readable_title,
    title_search_key,
)


def _release(tmp_path, **overrides):
    files = generate_movielens(n_users=8, n_movies=12, density=0.6)
    files.update(overrides)
    for name in [k for k, v in files.items() if v is None]:
        del files[name]
    return write_release(tmp_path, files)


def _error(tmp_path, **overrides) -> str:
    with pytest.raises(DataError) as info:
        load_movielens(_release(tmp_path, **overrides))
    return str(info.value)


def test_loads_zip_and_folder_with_crlf(tmp_path):
    files = generate_movielens(n_users=8, n_movies=12, density=0.6)
    from_zip = load_movielens(write_release(tmp_path / "z", files))
    from_dir = load_movielens(write_release(tmp_path / "d", files, as_zip=False))
    assert len(from_zip.ratings) == len(from_dir.ratings) > 0
    assert from_zip.fingerprint == from_dir.fingerprint
    assert from_zip.movies["title"].str.endswith("\r").sum() == 0
    assert from_zip.movies["year"].notna().all()
    assert from_zip.links["tmdbId"].isna().any()  # blank tmdbId allowed


def test_missing_file(tmp_path):
    msg = _error(tmp_path, **{"ratings.csv": None})
    assert "ratings.csv is missing" in msg


def test_missing_column(tmp_path):
    msg = _error(tmp_path, **{"movies.csv": "movieId,title\r\n1,Foo (1999)\r\n"})
    assert "movies.csv, line 1" in msg and "missing column(s) genres" in msg


def test_non_numeric_id(tmp_path):
    msg = _error(tmp_path, **{"ratings.csv": "userId,movieId,rating,timestamp\r\n1,1,4.0,1\r\nabc,2,3.0,1\r\n"})
    assert "ratings.csv, line 3" in msg and "userId is 'abc'" in msg


@pytest.mark.parametrize("bad", ["5.5", "0.0", "3.3", "x"])
def test_rating_off_scale(tmp_path, bad):
    msg = _error(tmp_path, **{"ratings.csv": f"userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,{bad},1\n"})
    assert "line 3" in msg and f"rating '{bad}'" in msg and "half-star" in msg


def test_duplicate_pair(tmp_path):
    msg = _error(tmp_path, **{"ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,3.0,1\n1,1,2.0,5\n"})
    assert "lines 2 and 4" in msg and "rated movie 1 twice" in msg


def test_empty_file(tmp_path):
    assert "is empty" in _error(tmp_path, **{"ratings.csv": ""})
    assert "no rows" in _error(tmp_path / "b", **{"ratings.csv": "userId,movieId,rating,timestamp\n"})


def test_undecodable_text(tmp_path):
    bad = "movieId,title,genres\n1,Ok (1990),Drama\n".encode() + b"2,Bad \xff\xfe title (1991),Drama\n"
    msg = _error(tmp_path, **{"movies.csv": bad})
    assert "movies.csv, line 3" in msg and "UTF-8" in msg


def test_rating_for_unknown_movie(tmp_path):
    msg = _error(tmp_path, **{"ratings.csv": "userId,movieId,rating,timestamp\n1,999,4.0,1\n"})
    assert "movieId 999 is not in movies.csv" in msg


def test_truncated_zip(tmp_path):
    good = _release(tmp_path / "good")
    data = good.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_movielens(cut)
    assert "truncated or corrupt" in str(info.value)


def test_corrupt_member(tmp_path):
    good = _release(tmp_path / "good")
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("ml-test/ratings.csv")
    start = info.header_offset + 30 + len(info.filename) + 10
    raw[start : start + 20] = b"\x00" * 20
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        load_movielens(bad)
    assert "ratings.csv" in str(info.value)


def test_missing_location(tmp_path):
    with pytest.raises(DataError, match="MOVIELENS_DATA"):
        load_movielens(tmp_path / "nope.zip")


def test_explode_genres_keeps_no_genres(small_data):
    g = explode_genres(small_data.movies)
    assert "(no genres listed)" in set(g["genre"])
    assert not g["genre"].str.contains("|", regex=False).any()


@pytest.mark.integration
def test_real_release(real_data):
    assert len(real_data.ratings) == 100836
    assert real_data.ratings["userId"].nunique() == 610
    assert len(real_data.movies) == 9742
    assert len(real_data.tags) == 3683 and len(real_data.links) == 9742


@pytest.mark.parametrize(
    "stored, readable",
    [
        ("Matrix, The (1999)", "The Matrix (1999)"),
        ("Boot, Das (Boat, The) (1981)", "Das Boot (The Boat) (1981)"),
        ("School of Flesh, The (École de la chair, L') (1998)", "The School of Flesh (L'École de la chair) (1998)"),
        (
            "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
            "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo) (1966)",
        ),
        (
            "Vitelloni, I (a.k.a. The Young and the Passionate) (1953)",
            "I Vitelloni (a.k.a. The Young and the Passionate) (1953)",
        ),
        ("Paris, Texas (1984)", "Paris, Texas (1984)"),  # a comma that is not an article
        ("I, Robot (2004)", "I, Robot (2004)"),
        ('Movie 1, the "sequel" (1980)', 'Movie 1, the "sequel" (1980)'),
        ("Babylon 5", "Babylon 5"),  # no year in the file
    ],
)
def test_readable_title(stored, readable):
    assert readable_title(stored) == readable
    assert readable_title(stored, with_year=False) == re.sub(r" \(\d{4}\)$", "", readable)


def test_title_search_key_folds_case_accents_and_article():
    key = title_search_key("Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)")
    for query in ("amelie", "le fabuleux destin d'amelie", "fabuleux destin d'amélie poulain, le"):
        assert fold_for_search(query) in key
    assert "the godfather" in title_search_key("Godfather, The (1972)")
    assert "godfather, the" in title_search_key("Godfather, The (1972)")


def test_readable_titles_on_the_real_catalogue(real_data):
    """Every MovieLens title keeps its words; only a trailing article moves to the front."""
    titles = real_data.movies["title"]
    readable = titles.map(readable_title)
    moved = readable != titles
    assert moved.sum() > 1500  # "..., The" alone is on ~1,700 titles of ml-latest-small
    words = lambda t: sorted(re.findall(r"[\w.:'-]+", t))  # noqa: E731
    same = [words(a) == words(b) for a, b in zip(readable[moved], titles[moved]) if ", L'" not in b]
    assert all(same)
    assert not readable[moved].str.contains(r", (?:The|A|An)(?:\)| \(|$)").any()
