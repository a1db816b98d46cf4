"""Ratings files people bring (movieId,rating, IMDb, Letterboxd) and the app's export."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.people.rating_files import IMDB, LETTERBOXD, MOVIELENS, RatingsFileError, export_ratings, read_ratings_file
from engine.people.user_ratings import RatingStore

MOVIES = pd.DataFrame(
    {
        "movieId": [1, 2, 47, 318, 4973, 10, 11, 12],
        "title": [
            "Toy Story (1995)",
            "Matrix, The (1999)",
            "Seven (a.k.a. Se7en) (1995)",
            "Shawshank Redemption, The (1994)",
            "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
            "Schindler's List (1993)",
            "Hamlet (1990)",
            "Hamlet (1992)",
        ],
        "year": pd.array([1995, 1999, 1995, 1994, 2001, 1993, 1990, 1992], dtype="Int64"),
        "imdbId": ["0114709", "0133093", "0114369", "0111161", "0211915", "0108052", "0099726", "0116477"],
    }
)

IMDB_EXPORT = """Const,Your Rating,Date Rated,Title,Original Title,URL,Title Type,IMDb Rating,Runtime (mins),Year,Genres,Num Votes,Release Date,Directors
tt0111161,10,2024-01-01,The Shawshank Redemption,The Shawshank Redemption,https://www.imdb.com/title/tt0111161/,Movie,9.3,142,1994,Drama,2900000,1994-09-10,Frank Darabont
tt0903747,9,2024-01-02,Breaking Bad,Breaking Bad,https://www.imdb.com/title/tt0903747/,TV Series,9.5,49,2008,"Crime, Drama, Thriller",2000000,2008-01-20,
tt0133093,7,2024-01-03,The Matrix,The Matrix,https://www.imdb.com/title/tt0133093/,Movie,8.7,136,1999,"Action, Sci-Fi",2000000,1999-03-31,"Lana Wachowski, Lilly Wachowski"
"""

LETTERBOXD_EXPORT = """Date,Name,Year,Letterboxd URI,Rating
2024-01-01,Amélie,2001,https://boxd.it/1,4.5
2024-01-02,the matrix,1999,https://boxd.it/2,5
2024-01-03,Se7en,1995,https://boxd.it/3,4
2024-01-04,Schindler’s List,1994,https://boxd.it/4,3.5
2024-01-05,Hamlet,1991,https://boxd.it/5,3
2024-01-06,Parasite,2019,https://boxd.it/6,5
2024-01-07,Toy Story,1995,https://boxd.it/7,
"""


def test_movielens_layout_with_or_without_header_and_extra_columns():
    for text in (
        "movieId,rating\n1,5\n2,4.5\n",
        "1,5\n2,4.5\n",
        "userId,movieId,rating,timestamp\n7,1,5,0\n7,2,4.5,0\n",
        '\ufeffmovieId,title,rating\n1,"Toy Story, again",5\n\n2,x,4.5\n',
    ):
        read = read_ratings_file(text.encode(), "mine.csv", MOVIES)
        assert read.layout == MOVIELENS and read.pairs == [(1, 5.0), (2, 4.5)], text


def test_imdb_export_matched_through_links_and_halved():
    read = read_ratings_file(IMDB_EXPORT.encode(), "ratings.csv", MOVIES)
    assert read.layout == IMDB
    assert read.pairs == [(318, 5.0), (2, 3.5)]
    assert read.unmatched == ["line 3: Breaking Bad (2008)"]  # a TV series: not a MovieLens movie
    assert (
        "1 skipped, not matched to one movie of this model's catalogue (line 3: Breaking Bad (2008))" in read.summary()
    )


def test_letterboxd_export_matched_by_title_and_year():
    read = read_ratings_file(LETTERBOXD_EXPORT, "ratings.csv", MOVIES)
    assert read.layout == LETTERBOXD
    # accents, case, the article in front, an a.k.a. title, a curly apostrophe and a year one off all match;
    # "Hamlet" 1991 is one off from two films (1990, 1992) and is not guessed; a film without stars is left out
    assert read.pairs == [(4973, 4.5), (2, 5.0), (47, 4.0), (10, 3.5)]
    assert read.unmatched == ["line 6: Hamlet (1991), 2 movies of that title", "line 7: Parasite (2019)"]
    assert read_ratings_file("Date,Name,Year,Letterboxd URI,Rating\n1,Hamlet,1992,u,3\n", "r.csv", MOVIES).pairs == [
        (12, 3.0)
    ]


def test_repeated_movie_counts_once_the_last_line_wins():
    read = read_ratings_file("movieId,rating\n1,2\n2,4\n1,5\n", "mine.csv", MOVIES)
    assert read.pairs == [(2, 4.0), (1, 5.0)] and read.repeated == 1
    assert "1 repeated" in read.summary()


@pytest.mark.parametrize(
    "data, message",
    [
        ("movieId,rating\n1,4\n2,x\n", "mine.csv, line 3: the rating 'x' is not a number"),
        ("movieId,rating\n1,7\n", "mine.csv, line 2: the rating '7' is off the scale: use 0.5-5 in half stars"),
        ("movieId,rating\n1,3.3\n", "line 2: the rating '3.3' is off the scale"),
        ("movieId,rating\nabc,3\n", "mine.csv, line 2: the movieId 'abc' is not a whole number"),
        ("movieId,rating\n1\n", "mine.csv, line 2: expected at least 2 columns (movieId, rating) but found 1"),
        ("title,stars\nHeat,4\n", "mine.csv, line 1: unrecognised header 'title, stars'. Expected movieId,rating"),
        ("Const,Your Rating\nnm0000123,5\n", "mine.csv, line 2: 'nm0000123' is not an IMDb id"),
        ("Const,Your Rating\ntt0111161,11\n", "line 2: the rating '11' is off the scale: use 1-10 in whole points"),
        ("Date,Name,Year,Letterboxd URI,Rating\n2024,Heat,nineteen,u,4\n", "line 2: the year 'nineteen' of 'Heat'"),
        ("\n\n", "mine.csv: the file has no ratings in it"),
        (b"\xff\xd8\xff\xe0 a JPEG", "mine.csv: not a UTF-8 text file"),
        (b"movieId,rating\n" + b"1,4\n" * 6_000_000, "mine.csv: 22.9 MiB is too big for a ratings file"),
    ],
)
def test_bad_files_name_the_file_the_line_and_the_fix(data, message):
    with pytest.raises(RatingsFileError) as err:
        read_ratings_file(data, "mine.csv", MOVIES)
    assert message in str(err.value)


def test_export_reads_back_the_same_ratings():
    pairs = [(4973, 4.5), (2, 5.0), (47, 0.5), (999, 3.0)]  # 999: no longer in the catalogue
    text = export_ratings(pairs, MOVIES)
    lines = text.splitlines()
    assert lines[0] == "movieId,imdbId,title,year,rating"
    assert lines[1] == "4973,0211915,Amelie (Le Fabuleux destin d'Amélie Poulain),2001,4.5"
    assert lines[2] == "2,0133093,The Matrix,1999,5"
    assert lines[4] == "999,,,,3"
    read = read_ratings_file(text.encode(), "guest-ratings.csv", MOVIES)
    assert read.pairs == pairs[:3] and read.unmatched == ["line 5: movie 999"]


def test_import_into_the_store_is_all_or_nothing(tmp_path):
    with RatingStore(tmp_path / "r.sqlite") as store:
        store.set_rating("me", 1, 2.0)
        counts = store.import_ratings("me", [(1, 5.0), (2, 4.0), (47, 3.5)])
        assert counts == {"added": 2, "replaced": 0, "kept": 1}
        assert store.ratings("me") == [(1, 2.0), (2, 4.0), (47, 3.5)]  # what I gave stays; file order kept
        assert store.import_ratings("me", [(1, 5.0)], replace=True) == {"added": 0, "replaced": 1, "kept": 0}
        assert dict(store.ratings("me"))[1] == 5.0
        with pytest.raises(ValueError, match="Rating 9.0 for movie 318 is off the scale"):
            store.import_ratings("me", [(318, 4.0), (318, 9.0)])
        with pytest.raises(ValueError, match="empty"):
            store.import_ratings("  ", [(318, 4.0)])
        assert len(store.ratings("me")) == 3 and 318 not in dict(store.ratings("me"))
    with RatingStore(tmp_path / "r.sqlite") as again:  # committed: another connection sees it
        assert dict(again.ratings("me")) == {1: 5.0, 2: 4.0, 47: 3.5}


def test_real_catalogue_matches_imdb_and_letterboxd_exports(real_data):
    """On ml-latest-small: IMDb ids through links.csv, Letterboxd names as the site writes them."""
    movies = real_data.movies.merge(real_data.links, on="movieId", how="left")
    imdb = read_ratings_file(IMDB_EXPORT.encode(), "ratings.csv", movies)
    assert imdb.pairs == [(318, 5.0), (2571, 3.5)]
    text = LETTERBOXD_EXPORT.replace("List,1994,", "List,1993,").replace("Hamlet,1991,", "Hamlet,1996,")
    letterboxd = read_ratings_file(text, "ratings.csv", movies)  # Branagh's, of the release's five Hamlets
    assert dict(letterboxd.pairs) == {4973: 4.5, 2571: 5.0, 47: 4.0, 527: 3.5, 1411: 3.0}, letterboxd.summary()
    assert letterboxd.unmatched == ["line 7: Parasite (2019)"]  # after the release's 2018 cut-off


def test_every_real_title_as_letterboxd_writes_it_finds_its_movie(real_data):
    """Each ml-latest-small movie, named as a site would ("The Matrix", 1999), matches itself or, when two
    movies share that title and year, nothing: never a wrong movie."""
    import re

    from engine.data.movielens import readable_title

    movies = real_data.movies.merge(real_data.links, on="movieId", how="left")
    dated = movies[movies["year"].notna()]
    lines = ["Date,Name,Year,Letterboxd URI,Rating"]
    for title, year in zip(dated["title"], dated["year"]):
        name = re.sub(r"\s*\(.+\)$", "", readable_title(title, with_year=False)) or title
        lines.append(f'2024-01-01,"{name.replace(chr(34), chr(34) * 2)}",{year},u,4')
    read = read_ratings_file("\n".join(lines), "catalogue.csv", movies)
    skipped = {int(u.split(":")[0].removeprefix("line ")) for u in read.unmatched}
    expected = [m for line, m in enumerate(dated["movieId"], start=2) if line not in skipped]
    assert [m for m, _ in read.pairs] == expected and read.repeated == 0  # line by line: its own movie
    assert len(read.pairs) >= 0.99 * len(dated), read.summary()  # 9,719 of 9,729 when written
