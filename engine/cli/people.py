"""``python -m engine rate``: a profile's ratings and hidden movies (SQLite), imported from or exported to
a file."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from ..settings import get_settings
from .common import EXIT_OK, _emit, _find_movie, _id_of, _index, _read_ratings_file


def cmd_rate(args) -> int:
    from ..people.user_ratings import RatingStore

    index, _ = _index(args.model)
    if args.export:
        from ..people.rating_files import export_ratings

        with RatingStore(get_settings().ratings_db) as store:
            pairs = store.ratings(args.profile)
        text = export_ratings(pairs, index.movies)
        if args.export == "-":
            if args.json:
                raise ValueError("--export - writes the CSV on stdout: leave out --json, or give a file.")
            sys.stdout.write(text)
        else:
            _write_atomically(Path(args.export), text)
            _emit(
                args,
                {"profile": args.profile, "exported": args.export, "ratings": len(pairs)},
                f"{args.profile}: {len(pairs)} rating(s) written to {args.export}",
            )
        return EXIT_OK
    imported = None
    if args.import_file:
        pairs = _read_ratings_file(args.import_file, index)
        with RatingStore(get_settings().ratings_db) as store:
            imported = store.import_ratings(args.profile, pairs, replace=args.replace)
            pairs, hidden = store.ratings(args.profile), store.hidden(args.profile)
    else:
        # a rating kept (or a movie hidden) for a movie a newer model lacks can still be removed by its id
        by_id = (args.remove or args.unhide) and _id_of(args.movie) is not None
        args.movie = _id_of(args.movie) if by_id else _find_movie(index, args.movie)
        if sum(map(bool, (args.rating is not None, args.remove, args.hide, args.unhide))) != 1:
            raise ValueError("With --movie, give one of --rating R (0.5-5.0), --remove, --hide or --unhide.")
        with RatingStore(get_settings().ratings_db) as store:
            if args.remove:
                if not store.remove_rating(args.profile, args.movie):
                    raise ValueError(
                        f"Profile {args.profile!r} has no rating of movie {args.movie}: nothing to "
                        "remove (its ratings: `python -m engine rate --profile NAME --export -`)."
                    )
            elif args.hide:
                store.hide(args.profile, args.movie)
            elif args.unhide:
                if not store.unhide(args.profile, args.movie):
                    raise ValueError(
                        f"Profile {args.profile!r} has not hidden movie {args.movie}: nothing to show again."
                    )
            else:
                index.fold_in([(args.movie, args.rating)])  # validates movie id and rating scale
                store.set_rating(args.profile, args.movie, args.rating)
            pairs, hidden = store.ratings(args.profile), store.hidden(args.profile)
    payload = {"profile": args.profile, "ratings": [{"movieId": m, "rating": r} for m, r in pairs], "hidden": hidden}
    text = f"{args.profile}: {len(pairs)} rating(s) stored" + (
        f", {len(hidden)} movie(s) not interested in" if hidden else ""
    )
    if imported is not None:
        payload["imported"] = imported
        text += (
            f" ({imported['added']} added, {imported['replaced']} replaced, {imported['kept']} kept "
            "as they were" + ("" if args.replace else "; --replace to take the file's") + ")"
        )
    _emit(args, payload, text)
    return EXIT_OK


def _write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed over it.

    A missing folder, a folder as the target or a file that cannot be written is a
    ValueError saying what to give instead, and no temporary file is left behind.
    """
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give a file name to write the CSV to, e.g. {path / 'ratings.csv'}.")
    if not path.parent.is_dir():
        raise ValueError(
            f"{path}: the folder {path.parent} does not exist. Create it first, or give a file in an existing folder."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ValueError(
            f"{path}: cannot write it ({exc.strerror or exc}). Give a file you may write, or '-' for stdout."
        ) from None
