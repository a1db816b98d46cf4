"""``python -m engine fetch|prepare-data|stats|about``: the MovieLens data, its statistics, one movie."""

from __future__ import annotations

import sys
from pathlib import Path

from ..settings import get_settings
from .common import EXIT_OK, _emit, _id_of, _index, _load_data, _spark


def cmd_fetch(args) -> int:
    from ..data.fetch import fetch

    path, what = fetch(get_settings().data_dir)
    _emit(args, {"path": str(path), "dataset": what}, f"{what}: {path}\nUse it with: export MOVIELENS_DATA={path}")
    return EXIT_OK


def _slice(args):
    """The --genres/--released/--rated slice of `stats` (a ValueError says which option is wrong)."""
    from ..data.stats import Slice, parse_years

    genres = tuple(g.strip() for g in (args.genres or "").split(",") if g.strip())
    return Slice(
        genres=genres,
        released=parse_years(args.released, "--released") if args.released else None,
        rated=parse_years(args.rated, "--rated") if args.rated else None,
    )


def _prepared() -> Path:
    """The configured release's Parquet folder, converted now if it is not yet (progress on stderr)."""
    from ..data.prepare import prepare_release

    return prepare_release(get_settings(), progress=lambda message: print(message, file=sys.stderr, flush=True))


def cmd_prepare_data(args) -> int:
    from ..data.prepare import read_manifest

    folder = _prepared()
    m = read_manifest(folder)
    _emit(
        args,
        {"path": str(folder), **m},
        f"{m['name']}: {m['ratings']:,} ratings, {m['users']:,} users, {m['movies']:,} movies as Parquet in "
        f"{folder} (fingerprint {m['fingerprint']})",
    )
    return EXIT_OK


def cmd_stats(args) -> int:
    from ..data.stats_spark import compute_stats_spark, read_spark_tables

    location = get_settings().movielens_data
    part = _slice(args)
    if args.spark:
        spark = _spark()
        if "://" in location:
            tables = read_spark_tables(spark, location)
        else:
            data = _load_data()
            tables = (
                spark.createDataFrame(data.ratings),
                spark.createDataFrame(data.movies[["movieId", "title", "genres"]]),
                spark.createDataFrame(data.tags),
            )
        if part.genres:
            part.check_genres(
                {g for row in tables[1].select("genres").distinct().collect() for g in (row[0] or "").split("|")}
            )
        stats = compute_stats_spark(spark, *tables, part=part)
    else:  # DuckDB over the release's Parquet (prepared here the first time)
        from ..data.stats_columnar import ColumnarRelease

        stats = ColumnarRelease(_prepared()).stats(part)
    payload = {"dataset": location, "slice": part.describe(), **stats.as_dict()}
    c = stats.counts
    head = location if part.everything else f"{location}: {part.describe()}"
    _emit(
        args,
        payload,
        f"{head}\n" + "\n".join(f"  {k:>20}: {v:,}" if isinstance(v, int) else f"  {k:>20}: {v}" for k, v in c.items()),
    )
    return EXIT_OK


def cmd_about(args) -> int:
    from ..data.movie_profile import movie_profile
    from ..data.movielens import readable_title

    text = args.movie.strip()
    movie = _id_of(text)
    movie = _index(args.model)[0].find_movie(text) if movie is None else movie  # titles need the model
    p = movie_profile(_load_data(), movie)
    lines = [f"{readable_title(p.title)} ({', '.join(p.genres) or 'no genres listed'})", f"  {p.ratings:,} ratings"]
    if p.ratings:
        lines[1] += (
            f", mean {p.mean_rating:.2f}; #{p.popularity_rank:,} most rated; by {p.users_share:.1%} "
            f"of users; rated {p.years_rated[0]}-{p.years_rated[1]}"
        )
        top = int(p.rating_values["count"].max())
        lines += [f"  {r:>4} {'#' * round(40 * c / top):<40} {c:,}" for r, c in p.rating_values.itertuples(index=False)]
    if len(p.tags):
        lines.append("  tags: " + ", ".join(f"{t} ({c})" for t, c in p.tags.itertuples(index=False)))
    _emit(args, p.as_dict(), "\n".join(lines))
    return EXIT_OK
