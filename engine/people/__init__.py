"""What people bring: the ratings they enter in the app or CLI, kept per profile in SQLite
(``user_ratings``), and rating files they import or export: movieId,rating CSV, IMDb and
Letterboxd exports (``rating_files``).

Importing this package imports none of its modules.
"""

__all__ = ["user_ratings", "rating_files"]
