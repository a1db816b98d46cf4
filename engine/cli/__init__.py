"""``python -m engine fetch|prepare-data|stats|train|tune|evaluate|models|recommend|similar|about|rate|mood``.

Progress goes to stderr; with ``--json`` exactly one JSON object goes to stdout, a failure's
too (``{"error": ..., "code": N}``, usage errors included).
Exit codes: 0 ok, 2 bad input (data, ids, ratings), 3 no or broken model,
4 Spark/Java unavailable, 1 anything else.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..recommender.serving import ORDERS
from ..settings import get_settings

log = logging.getLogger("engine.cli")

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_MODEL, EXIT_SPARK = 0, 1, 2, 3, 4


def print_error(message: str, code: int, as_json: bool) -> int:
    """A failure as users see it: ``error: ...`` on stderr and, with --json, one JSON object on stdout."""
    if as_json:
        print(json.dumps({"error": message, "code": code, "exit_code": code}))   # exit_code: older scripts
    sys.stderr.write(f"error: {message}\n")
    return code


class JsonArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors, under --json, are one JSON object too (exit 2)."""

    _argv: list[str] = []   # the arguments being parsed (subparsers see only their share)

    def parse_args(self, args=None, namespace=None):
        JsonArgumentParser._argv = sys.argv[1:] if args is None else list(args)
        return super().parse_args(args, namespace)

    def error(self, message: str):
        args = self._argv[:self._argv.index("--")] if "--" in self._argv else self._argv
        if any(len(a) > 2 and "--json".startswith(a) for a in args):   # --json, or argparse's --js
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


def _index(model: str | None = None):
    from ..recommender.model_store import current_model_dir
    from ..recommender.serving import RecommenderIndex
    root = get_settings().model_dir
    folder = Path(model) if model else current_model_dir(root)
    return RecommenderIndex.load(folder), folder


# ---------------------------------------------------------------------- commands
def cmd_fetch(args) -> int:
    from ..data.fetch import fetch
    path, what = fetch(get_settings().data_dir)
    _emit(args, {"path": str(path), "dataset": what}, f"{what}: {path}\n"
          f"Use it with: export MOVIELENS_DATA={path}")
    return EXIT_OK


def _slice(args):
    """The --genres/--released/--rated slice of `stats` (a ValueError says which option is wrong)."""
    from ..data.stats import Slice, parse_years
    genres = tuple(g.strip() for g in (args.genres or "").split(",") if g.strip())
    return Slice(genres=genres,
                 released=parse_years(args.released, "--released") if args.released else None,
                 rated=parse_years(args.rated, "--rated") if args.rated else None)


def _prepared() -> Path:
    """The configured release's Parquet folder, converted now if it is not yet (progress on stderr)."""
    from ..data.prepare import prepare_release
    return prepare_release(get_settings(), progress=lambda message: print(message, file=sys.stderr, flush=True))


def cmd_prepare_data(args) -> int:
    from ..data.prepare import read_manifest
    folder = _prepared()
    m = read_manifest(folder)
    _emit(args, {"path": str(folder), **m},
          f"{m['name']}: {m['ratings']:,} ratings, {m['users']:,} users, {m['movies']:,} movies as Parquet in "
          f"{folder} (fingerprint {m['fingerprint']})")
    return EXIT_OK


def cmd_stats(args) -> int:
    from ..data.stats import compute_stats_spark, read_spark_tables
    location = get_settings().movielens_data
    part = _slice(args)
    if args.spark:
        spark = _spark()
        if "://" in location:
            tables = read_spark_tables(spark, location)
        else:
            data = _load_data()
            tables = (spark.createDataFrame(data.ratings),
                      spark.createDataFrame(data.movies[["movieId", "title", "genres"]]),
                      spark.createDataFrame(data.tags))
        if part.genres:
            part.check_genres({g for row in tables[1].select("genres").distinct().collect()
                               for g in (row[0] or "").split("|")})
        stats = compute_stats_spark(spark, *tables, part=part)
    else:   # DuckDB over the release's Parquet (prepared here the first time)
        from ..data.stats_columnar import ColumnarRelease
        stats = ColumnarRelease(_prepared()).stats(part)
    payload = {"dataset": location, "slice": part.describe(), **stats.as_dict()}
    c = stats.counts
    head = location if part.everything else f"{location}: {part.describe()}"
    _emit(args, payload, f"{head}\n" + "\n".join(f"  {k:>20}: {v:,}" if isinstance(v, int)
                                                 else f"  {k:>20}: {v}" for k, v in c.items()))
    return EXIT_OK


def _config(args):
    """The ALSConfig of --rank, --max-iter, ...; checked here, before Spark starts (ValueError naming the option)."""
    from ..recommender.training import ALSConfig
    cfg = ALSConfig()
    for name in ("rank", "max_iter", "reg_param", "split_seed", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
            try:
                ALSConfig(**{name: value}).check()
            except ValueError as exc:
                raise ValueError(f"--{name.replace('_', '-')} {value}: {exc}") from None
    return cfg.check()


def _saved_text(path: Path, metrics: dict) -> str:
    """What `train` and `tune --train-best` say about the model they saved, and whether it is current."""
    if metrics.get("not_current"):
        return (f"warning: model {path.name} is saved but NOT made current: {metrics['not_current']}. "
                f"Serve it anyway with `python -m engine models --use {path.name}` (or train with --force-current).")
    return f"{path.name} is now the current model."


def _extra_ratings(args):
    if not getattr(args, "include_user_ratings", False):
        return None
    from ..people.user_ratings import RatingStore
    with RatingStore(get_settings().ratings_db) as store:
        return store.all_ratings()


def cmd_train(args) -> int:
    from ..recommender.training import train_and_save
    cfg = _config(args)
    data = _load_data()
    _progress(0.0, f"dataset: {data.describe()}")
    path, metrics = train_and_save(_spark(), data, get_settings().model_dir, cfg,
                                   progress=_progress, extra_ratings=_extra_ratings(args),
                                   force_current=args.force_current)
    summary = {k: v for k, v in metrics.items() if k != "ranking"}
    if metrics.get("not_current") and args.json:   # stdout is JSON: say it where a person reads
        sys.stderr.write(_saved_text(path, metrics) + "\n")
    _emit(args, {"model": str(path), "dataset": data.name, **summary},
          f"model {path.name} ({data.name}): test RMSE {metrics['test_rmse']:.4f} "
          f"(plain ALS {metrics['plain_als_rmse']:.4f}, bias baseline {metrics['bias_baseline_rmse']:.4f})\n"
          + _saved_text(path, metrics))
    return EXIT_OK


def _parse_list(text: str, kind):
    try:
        return [_whole(x) if kind is int else kind(x) for x in text.split(",") if x.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"Cannot read {text!r} as a comma-separated list of {kind.__name__}s.") from None


def cmd_tune(args) -> int:
    from ..recommender.training import DEFAULT_GRID, check_grid, train_and_save, tune
    grid = dict(DEFAULT_GRID)
    check_grid({}, args.folds)
    for option, name, kind in (("ranks", "rank", int), ("iters", "maxIter", int), ("regs", "regParam", float)):
        text = getattr(args, option)
        if text is not None:
            grid[name] = _parse_list(text, kind)
            try:
                check_grid({name: grid[name]}, args.folds)
            except ValueError as exc:
                raise ValueError(f"--{option} {text}: {exc}") from None
    check_grid(grid, args.folds)   # before Spark starts
    cfg = _config(args)
    data = _load_data()
    spark = _spark()
    result = tune(spark, data, grid, args.folds, cfg, progress=_progress, parallelism=args.parallelism,
                  blocks=args.blocks)
    payload = {"dataset": data.name, **result}
    saved = ""
    if args.train_best:
        cfg.rank, cfg.max_iter, cfg.reg_param = (result["best"]["rank"], result["best"]["maxIter"],
                                                 result["best"]["regParam"])
        path, metrics = train_and_save(spark, data, get_settings().model_dir, cfg, _progress, cv=result,
                                       force_current=args.force_current)
        payload.update(model=str(path), test_rmse=metrics["test_rmse"], current=metrics["current"],
                       **({"not_current": metrics["not_current"]} if metrics.get("not_current") else {}))
        saved = "\n" + _saved_text(path, metrics)
        if metrics.get("not_current") and args.json:
            sys.stderr.write(saved.strip() + "\n")
    text = "\n".join(f"rank {r['rank']:>3}  maxIter {r['maxIter']:>3}  regParam {r['regParam']:<6} "
                     f"RMSE {r['rmse']:.4f}" for r in result["table"])
    _emit(args, payload, f"{result['folds']}-fold CV, {result['fits']} fits in {result['seconds']} s\n{text}"
          + saved)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from ..recommender.model_store import check_dataset, current_model_dir, read_json, read_params
    from ..recommender.training import ALSConfig, train_and_evaluate
    folder = current_model_dir(get_settings().model_dir)
    flags = {name: getattr(args, name) for name in ("rank", "max_iter", "reg_param", "split_seed", "seed")
             if getattr(args, name, None) is not None}
    if args.saved:
        if flags:
            raise ValueError(f"--saved prints the stored metrics: it takes no "
                             f"{', '.join('--' + n.replace('_', '-') for n in flags)}.")
        metrics = read_json(folder, "metrics.json")
        settings = None
    else:
        data = _load_data()
        check_dataset(folder, data.fingerprint)
        params = read_params(folder)
        # The saved model's settings, each flag given replacing its own (checked before Spark).
        cfg = ALSConfig(**{k: params[k] for k in ALSConfig.__dataclass_fields__ if k in params})
        for name, value in flags.items():
            try:
                ALSConfig(**{name: value}).check()
            except ValueError as exc:
                raise ValueError(f"--{name.replace('_', '-')} {value}: {exc}") from None
            setattr(cfg, name, value)
        cfg.check()
        metrics = train_and_evaluate(_spark(), data, cfg, _progress)["metrics"]
        settings = {k: getattr(cfg, k) for k in ("rank", "max_iter", "reg_param", "split_seed", "seed")}
    summary = {k: v for k, v in metrics.items() if k != "ranking"}
    payload = {"model": folder.name, **summary, "ranking": metrics.get("ranking")}
    if settings is not None:
        payload["settings"] = settings       # what this run used: the saved model's, or the flags'
    _emit(args, payload, "\n".join(f"{k:>28}: {v}" for k, v in {**summary, **(settings or {})}.items()))
    return EXIT_OK


def _movie_rows(df: pd.DataFrame, cols: list[str]) -> str:
    return "\n".join(" ".join(f"{row[c]}" for c in cols if c in row) for _, row in df.iterrows())


def _read_ratings_file(path: str, index) -> list[tuple[int, float]]:
    """The ratings of a file (movieId,rating, an IMDb or a Letterboxd export); skips on stderr."""
    from ..people.rating_files import read_ratings_file
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{path}: no such file. Give a CSV of movieId,rating lines, an IMDb ratings "
                         "export or a Letterboxd ratings.csv.")
    result = read_ratings_file(p.read_bytes(), str(path), index.movies)
    sys.stderr.write(f"{path}: {result.summary()}\n")
    if not result.pairs:
        raise ValueError(f"{path}: none of its ratings is of a movie this model knows: nothing to use.")
    return result.pairs


def _group_members(text: str) -> tuple[dict, list[int]]:
    """"575,232,sam" -> ({"user 575": 575, "user 232": 232, "sam": sam's stored ratings}, sam's hidden movies)."""
    from ..people.user_ratings import RatingStore
    members, hidden = {}, set()
    with RatingStore(get_settings().ratings_db) as store:
        for token in (t.strip() for t in text.split(",")):
            if token.isdigit():
                members[f"user {token}"] = _id_of(token, "user id")
            elif token:
                ratings = store.ratings(token)
                if not ratings:
                    raise ValueError(f"--group: profile {token!r} has no ratings yet (digits are MovieLens "
                                     "user ids; other names are profiles stored with `rate`).")
                members[token] = ratings
                hidden.update(store.hidden(token))
    return members, sorted(hidden)


def cmd_models(args) -> int:
    from ..recommender.model_store import ModelError, NoModelYet, current_model_dir, delete_model, saved_models, set_current
    root = get_settings().model_dir
    done = ""
    if args.use is not None:   # "" too: a name it refuses, not "no --use"
        set_current(root, args.use)
        done = f"{args.use} is now the current model.\n"
    elif args.delete is not None:
        freed = delete_model(root, args.delete)
        done = f"Deleted {args.delete} ({freed / 2**20:.1f} MiB freed).\n"
    rows = saved_models(root)
    lines = [f"{'':2}{'model':<26}{'trained (UTC)':<18}{'dataset':<18}{'rank':>5}{'iter':>5}{'reg':>6}"
             f"{'RMSE':>8}{'NDCG@10':>9}{'MiB':>7}"]
    for r in rows:
        ndcg = f"{r['picks_ndcg_at_10']:.3f}" if r["picks_ndcg_at_10"] is not None else "-"
        rmse = f"{r['test_rmse']:.4f}" if r["test_rmse"] is not None else "-"
        lines.append(f"{'* ' if r['current'] else '  '}{r['model']:<26}{r['trained']:<18}{str(r['dataset']):<18}"
                     f"{r['rank']:>5}{r['max_iter']:>5}{r['reg_param']:>6}{rmse:>8}{ndcg:>9}{r['size_mb']:>7.1f}")
    text = done + ("\n".join(lines) + "\n* current (served by the app and `recommend`)" if rows
                   else f"No saved models in {root}. Train one with `python -m engine train`.")
    payload = {"models": rows, "model_dir": str(root)}
    try:   # a broken CURRENT: the list is how to pick a model, so it is shown, with what is wrong
        current_model_dir(root)
    except NoModelYet:
        pass
    except ModelError as exc:
        payload["current_error"] = str(exc)
        text += f"\nwarning: {exc}"
    _emit(args, payload, text)
    return EXIT_OK


def cmd_recommend(args) -> int:
    index, folder = _index(args.model)
    t0 = time.perf_counter()
    genres = _parse_list(args.genres, str) if args.genres else None
    if args.group:
        members, hidden = _group_members(args.group)
        recs = index.recommend_group(members, args.n, min_ratings=args.min_ratings, genres=genres,
                                     strategy=args.strategy, hidden=hidden)
        ms = (time.perf_counter() - t0) * 1000
        rows = _records(recs, ["movieId", "title", "genres", "group_score", *(f"for {m}" for m in members),
                               "n_ratings"])
        for row, why in zip(rows, recs["because_by"]):
            row["because"] = {label: title for label, title in why}   # each member's rated movie most like it
        payload = {"model": folder.name, "group": list(members), "strategy": args.strategy,
                   "latency_ms": round(ms, 3), "recommendations": rows}
        _emit(args, payload, _movie_rows(recs, ["group_score", "movieId", "title"]))
        return EXIT_OK
    if args.new_user or args.profile:
        hidden = ()
        if args.new_user:
            pairs = _read_ratings_file(args.new_user, index)
        else:
            from ..people.user_ratings import RatingStore
            with RatingStore(get_settings().ratings_db) as store:
                pairs, hidden = store.ratings(args.profile), store.hidden(args.profile)
        recs = index.recommend_new_user(pairs, args.n, min_ratings=args.min_ratings, genres=genres,
                                        order=args.order, hidden=hidden)
        who = {"new_user_ratings": len(pairs)}
    else:
        if args.user is None:
            raise ValueError("Say who: --user ID, --new-user FILE or --profile NAME.")
        recs = index.recommend(args.user, args.n, min_ratings=args.min_ratings, genres=genres,
                               order=args.order)
        who = {"user": args.user}
    ms = (time.perf_counter() - t0) * 1000
    payload = {"model": folder.name, **who, "order": args.order, "latency_ms": round(ms, 3),
               "recommendations": _records(recs, ["movieId", "title", "genres", "predicted_rating",
                                                  "n_ratings", "because"])}
    _emit(args, payload, _movie_rows(recs, ["predicted_rating", "movieId", "title"]))
    return EXIT_OK


def cmd_similar(args) -> int:
    also = []
    if args.method == "lsh":
        if args.also:
            raise ValueError("--method lsh searches around one movie: leave out --also, or use --method exact.")
        from ..recommender.lsh import lsh_similar
        from ..recommender.model_store import current_model_dir
        folder = Path(args.model) if args.model else current_model_dir(get_settings().model_dir)
        movie = _id_of(args.movie)
        args.movie = _index(args.model)[0].find_movie(args.movie) if movie is None else movie
        t0 = time.perf_counter()
        recs = lsh_similar(_spark(), folder, args.movie, args.n, min_ratings=args.min_ratings)
    else:
        index, folder = _index(args.model)
        args.movie = _find_movie(index, args.movie)
        also = [_find_movie(index, m) for m in args.also or ()]
        t0 = time.perf_counter()
        recs = index.similar(args.movie, args.n, min_ratings=args.min_ratings, also=also)
    ms = (time.perf_counter() - t0) * 1000
    payload = {"model": folder.name, "movie": args.movie, **({"also": also} if also else {}), "method": args.method,
               "latency_ms": round(ms, 3),
               "similar": _records(recs, ["movieId", "title", "genres", "score", "n_ratings"])}
    _emit(args, payload, _movie_rows(recs, ["score", "movieId", "title"]))
    return EXIT_OK


def cmd_about(args) -> int:
    from ..data.movielens import readable_title
    from ..data.stats import movie_profile
    text = args.movie.strip()
    movie = _id_of(text)
    movie = _index(args.model)[0].find_movie(text) if movie is None else movie   # titles need the model
    p = movie_profile(_load_data(), movie)
    lines = [f"{readable_title(p.title)} ({', '.join(p.genres) or 'no genres listed'})", f"  {p.ratings:,} ratings"]
    if p.ratings:
        lines[1] += (f", mean {p.mean_rating:.2f}; #{p.popularity_rank:,} most rated; by {p.users_share:.1%} "
                     f"of users; rated {p.years_rated[0]}-{p.years_rated[1]}")
        top = int(p.rating_values["count"].max())
        lines += [f"  {r:>4} {'#' * round(40 * c / top):<40} {c:,}" for r, c in p.rating_values.itertuples(index=False)]
    if len(p.tags):
        lines.append("  tags: " + ", ".join(f"{t} ({c})" for t, c in p.tags.itertuples(index=False)))
    _emit(args, p.as_dict(), "\n".join(lines))
    return EXIT_OK


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
            _emit(args, {"profile": args.profile, "exported": args.export, "ratings": len(pairs)},
                  f"{args.profile}: {len(pairs)} rating(s) written to {args.export}")
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
                    raise ValueError(f"Profile {args.profile!r} has no rating of movie {args.movie}: nothing to "
                                     "remove (its ratings: `python -m engine rate --profile NAME --export -`).")
            elif args.hide:
                store.hide(args.profile, args.movie)
            elif args.unhide:
                if not store.unhide(args.profile, args.movie):
                    raise ValueError(f"Profile {args.profile!r} has not hidden movie {args.movie}: "
                                     "nothing to show again.")
            else:
                index.fold_in([(args.movie, args.rating)])  # validates movie id and rating scale
                store.set_rating(args.profile, args.movie, args.rating)
            pairs, hidden = store.ratings(args.profile), store.hidden(args.profile)
    payload = {"profile": args.profile, "ratings": [{"movieId": m, "rating": r} for m, r in pairs],
               "hidden": hidden}
    text = f"{args.profile}: {len(pairs)} rating(s) stored" + (f", {len(hidden)} movie(s) not interested in"
                                                             if hidden else "")
    if imported is not None:
        payload["imported"] = imported
        text += (f" ({imported['added']} added, {imported['replaced']} replaced, {imported['kept']} kept "
                 "as they were" + ("" if args.replace else "; --replace to take the file's") + ")")
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
        raise ValueError(f"{path}: the folder {path.parent} does not exist. Create it first, or give a "
                         "file in an existing folder.")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ValueError(f"{path}: cannot write it ({exc.strerror or exc}). Give a file you may write, "
                         "or '-' for stdout.") from None


def cmd_mood(args) -> int:
    from ..recommender.mood import mood_recommendations
    index, folder = _index(args.model)
    t0 = time.perf_counter()
    ratings, hidden = None, []
    if args.profile:
        from ..people.user_ratings import RatingStore
        with RatingStore(get_settings().ratings_db) as store:
            ratings, hidden = store.ratings(args.profile), store.hidden(args.profile)
        if not ratings:
            raise ValueError(f"Profile {args.profile!r} has no ratings yet: rate a few movies first "
                             "(`rate --profile NAME --movie TITLE --rating R`, or in the app).")
    recs = mood_recommendations(args.emotion, index.movies, args.n, args.min_ratings,
                                index=index if args.user is not None or ratings else None, user_id=args.user,
                                ratings=ratings, hidden=hidden)
    ms = (time.perf_counter() - t0) * 1000
    who = {"profile": args.profile} if args.profile else {"user": args.user}
    payload = {"model": folder.name, "emotion": args.emotion, **who,
               "latency_ms": round(ms, 3),
               "movies": _records(recs, ["movieId", "title", "genres", "score", "predicted_rating",
                                         "total_ratings", "n_ratings", "ranked_by"])}
    _emit(args, payload, _movie_rows(recs, ["movieId", "title", "genres"]))
    return EXIT_OK


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = JsonArgumentParser(prog="python -m engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(func=func)
        return p

    add("fetch", cmd_fetch, "download ml-latest-small (or the offline fallback)")
    add("prepare-data", cmd_prepare_data, "convert the release to Parquet once (cached by the release)")
    p = add("stats", cmd_stats, "dataset statistics")
    p.add_argument("--spark", action="store_true", help="compute with Spark (large releases, URIs)")
    p.add_argument("--genres", help="only movies of any of these genres, comma-separated, e.g. Comedy,Drama")
    p.add_argument("--released", metavar="YEARS", help="only movies released in these years, e.g. 1990-1999")
    p.add_argument("--rated", metavar="YEARS", help="only ratings (and tags) given in these years, e.g. 2015")
    for name, func, text in (("train", cmd_train, "train and save the default model"),
                             ("tune", cmd_tune, "cross-validated grid search"),
                             ("evaluate", cmd_evaluate, "re-run the evaluation protocol")):
        p = add(name, func, text)
        p.add_argument("--rank", type=int)
        p.add_argument("--max-iter", type=int)
        p.add_argument("--reg-param", type=float)
        p.add_argument("--split-seed", type=int)
        p.add_argument("--seed", type=int)
    sub.choices["train"].add_argument("--include-user-ratings", action="store_true",
                                      help="add the ratings stored by the app (SQLite)")
    for name in ("train", "tune"):
        sub.choices[name].add_argument(
            "--force-current", action="store_true",
            help="make the new model current even when its test RMSE is worse than the bias-only baseline's "
                 "(such a model is otherwise saved but not made current)")
    t = sub.choices["tune"]
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--ranks", help="e.g. 8,16,32")
    t.add_argument("--iters", help="e.g. 10,15,20")
    t.add_argument("--regs", help="e.g. 0.05,0.1,0.2")
    t.add_argument("--train-best", action="store_true", help="train and save the best model")
    t.add_argument("--parallelism", type=_count, default=2,
                   help="fits at once (default 2: on 2 cores they hide each other's job overhead)")
    t.add_argument("--blocks", type=_at_least_zero, default=0,
                   help="ALS blocks per fit (default 0: one per core; 10: Spark's default, slower)")
    sub.choices["evaluate"].add_argument("--saved", action="store_true",
                                         help="print the current model's stored metrics")
    p = add("models", cmd_models, "list the saved models; make one current or delete one")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--use", metavar="NAME", help="make this saved model the current one")
    act.add_argument("--delete", metavar="NAME", help="delete this saved model (not the current one)")
    p = add("recommend", cmd_recommend, "top-N movies for a user (no Spark)")
    p.add_argument("--user", type=int)
    p.add_argument("--new-user", metavar="FILE", help="ratings of someone new: a CSV of movieId,rating, "
                                                      "an IMDb ratings export or a Letterboxd ratings.csv")
    p.add_argument("--profile", help="a profile stored with `rate`")
    p.add_argument("--group", metavar="MEMBERS",
                   help="a movie night: comma-separated MovieLens user ids and profile names, e.g. 575,232,sam")
    p.add_argument("--strategy", choices=["misery", "average"], default="misery",
                   help="with --group: misery (default): the best lowest predicted rating in the group; "
                        "average: the best mean")
    p.add_argument("-n", type=_count, default=10)
    p.add_argument("--min-ratings", type=_at_least_zero, default=20,
                   help="leave out movies with fewer training ratings (default 20)")
    p.add_argument("--genres", help="comma-separated, e.g. Comedy,Drama")
    p.add_argument("--order", choices=list(ORDERS), default="rating",
                   help="rating: highest predicted rating first (default); picks: top picks, the "
                        "movies the user is most likely to watch and like (implicit ALS)")
    p.add_argument("--model", help="model folder (default: current)")
    p = add("similar", cmd_similar, "movies similar to one movie")
    p.add_argument("--movie", required=True, help='an id or a title, e.g. 2571 or "the matrix"')
    p.add_argument("--also", action="append", metavar="MOVIE",
                   help="another movie to be like at the same time (repeatable; exact method)")
    p.add_argument("-n", type=_count, default=10)
    p.add_argument("--min-ratings", type=_at_least_zero, default=10)
    p.add_argument("--method", choices=["exact", "lsh"], default="exact")
    p.add_argument("--model")
    p = add("about", cmd_about, "one movie in the ratings: count, mean, rank, star histogram, years, tags")
    p.add_argument("--movie", required=True, help='an id, or a title (needs a trained model), e.g. "the matrix"')
    p.add_argument("--model")
    p = add("rate", cmd_rate, "store a rating for a new-user profile (SQLite), import or export them")
    p.add_argument("--profile", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--movie", help='an id or a title, e.g. 2571 or "the matrix"')
    what.add_argument("--import", dest="import_file", metavar="FILE",
                      help="add the ratings of a CSV: movieId,rating (this app's export, MovieLens), "
                           "an IMDb ratings export or a Letterboxd ratings.csv")
    what.add_argument("--export", metavar="FILE", help="write the profile's ratings as CSV ('-': stdout)")
    p.add_argument("--replace", action="store_true",
                   help="with --import: the file's rating replaces one already stored")
    p.add_argument("--rating", type=float)
    p.add_argument("--remove", action="store_true", help="with --movie: delete its rating")
    p.add_argument("--hide", action="store_true",
                   help="with --movie: not interested (left out of the profile's lists, movie nights, moods)")
    p.add_argument("--unhide", action="store_true", help="with --movie: show it again")
    p.add_argument("--model")
    p = add("mood", cmd_mood, "movies for an emotion")
    p.add_argument("--emotion", required=True)
    whose = p.add_mutually_exclusive_group()
    whose.add_argument("--user", type=int, help="rank for a MovieLens user")
    whose.add_argument("--profile", help="rank for a profile's own ratings (stored with `rate`)")
    p.add_argument("-n", type=_count, default=10)
    p.add_argument("--min-ratings", type=_at_least_zero, default=20)
    p.add_argument("--model")
    return parser


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


def main(argv: list[str] | None = None) -> int:
    from ..recommender.model_store import ModelError
    from ..data.movielens import DataError
    from ..recommender.serving import RatingInputError, UnknownIdError
    from ..spark import SparkUnavailable

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except BrokenPipeError:   # `... | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (DataError, UnknownIdError, RatingInputError, ValueError) as exc:
        code, message = EXIT_INPUT, str(exc)
    except ModelError as exc:
        code, message = EXIT_MODEL, str(exc)
    except SparkUnavailable as exc:
        code, message = EXIT_SPARK, str(exc)
    except Exception as exc:   # a fault nobody foresaw: still one message (and, with -v, the traceback)
        log.info("unexpected failure", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]   # a Java error's first line, not its trace
        code, message = EXIT_ERROR, (f"unexpected {type(exc).__name__}: {first} (run again with -v for "
                                     "the traceback; report it if it persists).")
    return print_error(message, code, args.json)
