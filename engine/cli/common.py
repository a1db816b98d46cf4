"""What every ``python -m engine`` command shares: exit codes, errors as users see them (and as one
JSON object under ``--json``), argument types, output, and the data, Spark session and index they open.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..settings import get_settings

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_MODEL, EXIT_SPARK = 0, 1, 2, 3, 4


def print_error(message: str, code: int, as_json: bool) -> int:
    """A failure as users see it: ``error: ...`` on stderr and, with --json, one JSON object on stdout."""
    if as_json:
        print(json.dumps({"error": message, "code": code, "exit_code": code}))  # exit_code: older scripts
    sys.stderr.write(f"error: {message}\n")
    return code


class JsonArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors, under --json, are one JSON object too (exit 2)."""

    _argv: list[str] = []  # the arguments being parsed (subparsers see only their share)

    def parse_args(self, args=None, namespace=None):
        JsonArgumentParser._argv = sys.argv[1:] if args is None else list(args)
        return super().parse_args(args, namespace)

    def error(self, message: str):
        args = self._argv[: self._argv.index("--")] if "--" in self._argv else self._argv
        if any(len(a) > 2 and "--json".startswith(a) for a in args):  # --json, or argparse's --js
            self.print_usage(sys.stderr)
            sys.exit(print_error(f"{self.prog}: {message}", EXIT_INPUT, True))
        super().error(message)


def _count(text: str) -> int:
    """-n: a whole number of at least 1 (a list of no movies is no answer)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _at_least_zero(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def _whole(text: str) -> int:
    from ..people.rating_files import parse_whole

    try:
        return parse_whole(text, "the value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def _id_of(text: str, what: str = "movie id") -> int | None:
    """Digits typed for an id, as that id (a ValueError when not one); None for anything else (a title)."""
    from ..people.rating_files import parse_whole

    text = text.strip()
    return parse_whole(text, f"the {what}") if text.isdigit() else None


def _find_movie(index, text: str) -> int:
    """``index.find_movie``, after digits that are no id ("²", 5,000 of them) are refused by name."""
    _id_of(text)
    return index.find_movie(text)


def _records(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    out = df[[c for c in columns if c in df.columns]].copy()
    for col in out.columns:
        if pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return json.loads(out.to_json(orient="records"))


def _emit(args, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    else:
        print(text)


def _progress(fraction: float, message: str) -> None:
    sys.stderr.write(f"[{100 * fraction:3.0f}%] {message}\n")
    sys.stderr.flush()


def _load_data():
    from ..data.movielens import load_movielens

    return load_movielens(get_settings().movielens_data)


def _spark():
    from ..spark import get_spark

    return get_spark(get_settings())


def _release():
    """(Spark session, the release as Spark reads it) for train/tune/evaluate. A local release is
    converted to Parquet first (once; at once when done), so bad data is said before Spark starts."""
    from ..data.prepare import prepare_release
    from ..data.spark_release import open_release

    settings = get_settings()
    if "://" not in settings.movielens_data:
        prepare_release(settings, lambda message: _progress(0.0, message))
    spark = _spark()
    return spark, open_release(spark, settings)


def _index(model: str | None = None):
    from ..recommender.model_store import current_model_dir
    from ..recommender.serving import RecommenderIndex

    root = get_settings().model_dir
    folder = Path(model) if model else current_model_dir(root)
    return RecommenderIndex.load(folder), folder


def _parse_list(text: str, kind):
    try:
        return [_whole(x) if kind is int else kind(x) for x in text.split(",") if x.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"Cannot read {text!r} as a comma-separated list of {kind.__name__}s.") from None


def _movie_rows(df: pd.DataFrame, cols: list[str]) -> str:
    return "\n".join(" ".join(f"{row[c]}" for c in cols if c in row) for _, row in df.iterrows())


def _read_ratings_file(path: str, index) -> list[tuple[int, float]]:
    """The ratings of a file (movieId,rating, an IMDb or a Letterboxd export); skips on stderr."""
    from ..people.rating_files import read_ratings_file

    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"{path}: no such file. Give a CSV of movieId,rating lines, an IMDb ratings "
            "export or a Letterboxd ratings.csv."
        )
    result = read_ratings_file(p.read_bytes(), str(path), index.movies)
    sys.stderr.write(f"{path}: {result.summary()}\n")
    if not result.pairs:
        raise ValueError(f"{path}: none of its ratings is of a movie this model knows: nothing to use.")
    return result.pairs


def exit_process(code: int) -> None:
    """End a finished command's process without the interpreter's teardown.

    Everything is written and flushed by now. What is skipped is the teardown of
    native thread pools: Arrow's (parquet reads) can abort the process at exit
    with "terminate called without an active exception" (SIGABRT, exit -6 instead
    of our code; apache/arrow#34314), which turned a clean "unknown emotion" exit 2
    into a crash once in CI. A Spark JVM started by the command exits on its own
    when this process's pipe to it closes.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
