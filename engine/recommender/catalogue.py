"""The catalogue an index serves: the movies it knows, their titles and genres, title search,
finding the movie someone means, and the most-rated movies a newcomer rates first (the quick-start grid).

:class:`Catalogue` is a part of :class:`~engine.recommender.serving.RecommenderIndex`; it reads the
index's ``movies`` (metadata aligned with ``item_ids``), ``item_ids`` and ``item_support``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, TITLE, fold_for_search, readable_title, title_search_key


class UnknownIdError(KeyError):
    """A user or movie id the model does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class Catalogue:
    """Movies by id, position, genre and title; what a newcomer is offered to rate first."""

    movies: pd.DataFrame  # metadata aligned with item_ids (title, genres, year, links)
    item_ids: np.ndarray  # (n_items,) movies with factors, sorted
    item_support: np.ndarray  # (n_items,) training ratings per movie

    def _index_catalogue(self) -> None:
        """Positions, genre masks, readable titles and search keys: made once, when the index is built."""
        self._item_pos = {int(m): i for i, m in enumerate(self.item_ids)}
        genres = self.movies[GENRES].str.split("|").to_numpy()
        if len(genres):  # one boolean row per genre name, sorted: which movies have it
            names, codes = np.unique(np.concatenate(genres), return_inverse=True)
            masks = np.zeros((len(names), len(genres)), bool)
            masks[codes, np.repeat(np.arange(len(genres)), [len(gs) for gs in genres])] = True
            self._genre_masks = {str(name): mask for name, mask in zip(names, masks)}
        readable = [readable_title(t) for t in self.movies[TITLE]]
        self.readable_titles = pd.Series(readable, index=self.movies[ITEM].astype(int).to_numpy(), name=TITLE)
        self._title_keys = pd.Series([title_search_key(t, r) for t, r in zip(self.movies[TITLE], readable)])

    @property
    def genres(self) -> list[str]:
        return list(self._genre_masks)

    def has_movie(self, movie_id: int) -> bool:
        return int(movie_id) in self._item_pos

    def _item(self, movie_id) -> int:
        try:
            return self._item_pos[int(movie_id)]
        except (KeyError, ValueError, TypeError):
            raise UnknownIdError(
                f"Unknown movie id {movie_id!r}: it is not in the catalogue or "
                "has no ratings in the training data. Search by title to find "
                "a known movie."
            ) from None

    def _positions(self, movie_ids) -> np.ndarray:
        """Index positions of the movie ids the model knows (others ignored)."""
        return np.array([self._item_pos[int(m)] for m in movie_ids if int(m) in self._item_pos], dtype=int)

    def search_titles(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Movies whose title contains ``query``, most-rated first.

        Case and accents do not matter, and the article may lead as people write it:
        "the godfather" finds "Godfather, The (1972)", "amelie" finds "Amélie".
        """
        q = fold_for_search((query or "").strip())
        hits = (
            np.flatnonzero(self._title_keys.str.contains(q, regex=False).to_numpy())
            if q
            else np.arange(len(self.movies))
        )
        hits = hits[np.argsort(-self.item_support[hits], kind="stable")][:limit]
        out = self.movies.iloc[hits][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["n_ratings"] = self.item_support[hits]
        return out

    def popular_to_rate(self, exclude=(), n: int = 9, offset: int = 0) -> pd.DataFrame:
        """Movies a newcomer most likely has seen, to rate first: the most-rated ones.

        ``exclude`` (movie ids already rated) are left out; ``offset`` skips that many of the
        rest, most-rated first, and wraps around at the end ("show me other movies").
        Ties in popularity keep catalogue order, so the list is stable between calls.
        """
        if n <= 0:
            return self.movies.iloc[[]][[ITEM, TITLE, GENRES, "year"]].assign(n_ratings=[])
        mask = np.ones(len(self.item_ids), bool)
        known = [self._item_pos[int(m)] for m in exclude if int(m) in self._item_pos]
        mask[known] = False
        pos = np.flatnonzero(mask)
        pos = pos[np.argsort(-self.item_support[pos], kind="stable")]
        if pos.size:
            start = int(offset) % pos.size
            pos = np.roll(pos, -start)[:n]
        out = self.movies.iloc[pos][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["n_ratings"] = self.item_support[pos]
        return out

    def find_movie(self, query) -> int:
        """The movie someone means: its id, or its title as stored or as people write it.

        "2571", "the matrix", "Matrix, The (1999)" all give 2571. A title must name one movie:
        the whole title (the year may be left out) or a part only one title contains; otherwise
        the error lists the candidates with their ids. Digits are an id when the model knows
        one (add the year for a title made of digits: "1917 (2019)").
        """
        text = str(query if query is not None else "").strip()
        if not text:
            raise UnknownIdError("No movie given: pass its id or its title.")
        if text.isdigit() and int(text) in self._item_pos:
            return int(text)
        hits = self.search_titles(text, limit=len(self.movies))
        if hits.empty:
            raise UnknownIdError(
                f"No movie id or title matches {text!r}: check the spelling, or give a part of the title."
            )
        q = fold_for_search(text)
        whole = [
            int(m)
            for m, t in zip(hits[ITEM], hits[TITLE])
            if q in {fold_for_search(form) for form in (t, self.readable_titles[m], readable_title(t, with_year=False))}
        ]
        if len(whole) == 1:
            return whole[0]
        if len(hits) == 1:
            return int(hits[ITEM].iloc[0])
        named = hits[hits[ITEM].isin(whole)] if whole else hits
        shown = "; ".join(f"{self.readable_titles[m]} = {m}" for m in named[ITEM][:8])
        more = f" and {len(named) - 8} more" if len(named) > 8 else ""
        raise UnknownIdError(
            f"{text!r} matches {len(named)} movies ({shown}{more}): pass the id or the whole title with its year."
        )
