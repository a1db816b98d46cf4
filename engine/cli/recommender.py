"""``python -m engine train|tune|evaluate|models|recommend|similar|mood``: training and saved models, then
the lists they serve (for a user, a profile, a file of ratings, a movie night, a movie, a mood)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..settings import get_settings
from .common import (
    EXIT_OK,
    _emit,
    _find_movie,
    _id_of,
    _index,
    _movie_rows,
    _parse_list,
    _progress,
    _read_ratings_file,
    _records,
    _release,
    _spark,
)


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
        return (
            f"warning: model {path.name} is saved but NOT made current: {metrics['not_current']}. "
            f"Serve it anyway with `python -m engine models --use {path.name}` (or train with --force-current)."
        )
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
    spark, data = _release()
    _progress(0.0, f"dataset: {data.describe()}")
    path, metrics = train_and_save(
        spark,
        data,
        get_settings().model_dir,
        cfg,
        progress=_progress,
        extra_ratings=_extra_ratings(args),
        force_current=args.force_current,
    )
    summary = {k: v for k, v in metrics.items() if k != "ranking"}
    if metrics.get("not_current") and args.json:  # stdout is JSON: say it where a person reads
        sys.stderr.write(_saved_text(path, metrics) + "\n")
    _emit(
        args,
        {"model": str(path), "dataset": data.name, **summary},
        f"model {path.name} ({data.name}): test RMSE {metrics['test_rmse']:.4f} "
        + (f"(bias-corrected ALS alone {metrics['explicit_rmse']:.4f}, " if "explicit_rmse" in metrics else "(")
        + f"plain ALS {metrics['plain_als_rmse']:.4f}, bias baseline {metrics['bias_baseline_rmse']:.4f})\n"
        + _saved_text(path, metrics),
    )
    return EXIT_OK


def cmd_tune(args) -> int:
    from ..recommender.training import train_and_save
    from ..recommender.tuning import DEFAULT_GRID, check_grid, tune

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
    check_grid(grid, args.folds)  # before Spark starts
    cfg = _config(args)
    spark, data = _release()
    result = tune(
        spark, data, grid, args.folds, cfg, progress=_progress, parallelism=args.parallelism, blocks=args.blocks
    )
    payload = {"dataset": data.name, **result}
    saved = ""
    if args.train_best:
        cfg.rank, cfg.max_iter, cfg.reg_param = (
            result["best"]["rank"],
            result["best"]["maxIter"],
            result["best"]["regParam"],
        )
        path, metrics = train_and_save(
            spark, data, get_settings().model_dir, cfg, _progress, cv=result, force_current=args.force_current
        )
        payload.update(
            model=str(path),
            test_rmse=metrics["test_rmse"],
            current=metrics["current"],
            **({"not_current": metrics["not_current"]} if metrics.get("not_current") else {}),
        )
        saved = "\n" + _saved_text(path, metrics)
        if metrics.get("not_current") and args.json:
            sys.stderr.write(saved.strip() + "\n")
    text = "\n".join(
        f"rank {r['rank']:>3}  maxIter {r['maxIter']:>3}  regParam {r['regParam']:<6} RMSE {r['rmse']:.4f}"
        for r in result["table"]
    )
    _emit(args, payload, f"{result['folds']}-fold CV, {result['fits']} fits in {result['seconds']} s\n{text}" + saved)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from ..recommender.ease import OFF as EASE_OFF
    from ..recommender.ease import EaseConfig
    from ..recommender.model_store import check_dataset, current_model_dir, read_json, read_params
    from ..recommender.neighbours import Blend, NeighbourConfig
    from ..recommender.training import NO_BLEND, ALSConfig, train_and_evaluate

    folder = current_model_dir(get_settings().model_dir)
    flags = {
        name: getattr(args, name)
        for name in ("rank", "max_iter", "reg_param", "split_seed", "seed", "split_by")
        if getattr(args, name, None) is not None
    }
    if args.saved:
        if flags:
            raise ValueError(
                f"--saved prints the stored metrics: it takes no "
                f"{', '.join('--' + n.replace('_', '-') for n in flags)}."
            )
        metrics = read_json(folder, "metrics.json")
        settings = None
    else:
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
        spark, data = _release()
        check_dataset(folder, data.fingerprint)
        # The saved model's blend of the predicted stars (models saved before it had none: the ALS alone).
        blend = Blend.of(params.get("blend")) or NO_BLEND
        found = NeighbourConfig(**params["neighbours"]) if "neighbours" in params else None
        # The saved model's EASE beside the top picks' implicit ALS (models saved before it: none).
        saved_ease = params.get("ease")
        ease_cfg = EaseConfig(**saved_ease) if isinstance(saved_ease, dict) else EASE_OFF
        metrics = train_and_evaluate(spark, data, cfg, _progress, blend=blend, neighbours_cfg=found, ease_cfg=ease_cfg)[
            "metrics"
        ]
        settings = {k: getattr(cfg, k) for k in ("rank", "max_iter", "reg_param", "split_seed", "seed", "split_by")}
    summary = {k: v for k, v in metrics.items() if k != "ranking"}
    payload = {"model": folder.name, **summary, "ranking": metrics.get("ranking")}
    if settings is not None:
        payload["settings"] = settings  # what this run used: the saved model's, or the flags'
    old = summary.get("deprecated_keys", {})  # the text shows each figure once, by its new name
    shown = {k: v for k, v in {**summary, **(settings or {})}.items() if k not in old and k != "deprecated_keys"}
    _emit(args, payload, "\n".join(f"{k:>28}: {v}" for k, v in shown.items()))
    return EXIT_OK


def cmd_models(args) -> int:
    from ..recommender.model_store import (
        ModelError,
        NoModelYet,
        current_model_dir,
        delete_model,
        saved_models,
        set_current,
    )

    root = get_settings().model_dir
    done = ""
    if args.use is not None:  # "" too: a name it refuses, not "no --use"
        set_current(root, args.use)
        done = f"{args.use} is now the current model.\n"
    elif args.delete is not None:
        freed = delete_model(root, args.delete)
        done = f"Deleted {args.delete} ({freed / 2**20:.1f} MiB freed).\n"
    rows = saved_models(root)
    lines = [
        f"{'':2}{'model':<26}{'trained (UTC)':<18}{'dataset':<18}{'rank':>5}{'iter':>5}{'reg':>6}"
        f"{'RMSE':>8}{'NDCG@10':>9}{'MiB':>7}"
    ]
    for r in rows:
        ndcg = f"{r['top_picks_ndcg_at_10']:.3f}" if r["top_picks_ndcg_at_10"] is not None else "-"
        rmse = f"{r['test_rmse']:.4f}" if r["test_rmse"] is not None else "-"
        lines.append(
            f"{'* ' if r['current'] else '  '}{r['model']:<26}{r['trained']:<18}{str(r['dataset']):<18}"
            f"{r['rank']:>5}{r['max_iter']:>5}{r['reg_param']:>6}{rmse:>8}{ndcg:>9}{r['size_mb']:>7.1f}"
        )
    text = done + (
        "\n".join(lines) + "\n* current (served by the app and `recommend`)"
        if rows
        else f"No saved models in {root}. Train one with `python -m engine train`."
    )
    payload = {"models": rows, "model_dir": str(root)}
    try:  # a broken CURRENT: the list is how to pick a model, so it is shown, with what is wrong
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
        recs = index.recommend_group(
            members, args.n, min_ratings=args.min_ratings, genres=genres, strategy=args.strategy, hidden=hidden
        )
        ms = (time.perf_counter() - t0) * 1000
        rows = _records(
            recs, ["movieId", "title", "genres", "group_score", *(f"for {m}" for m in members), "n_ratings"]
        )
        for row, why in zip(rows, recs["because_by"]):
            row["because"] = {label: title for label, title in why}  # each member's rated movie most like it
        payload = {
            "model": folder.name,
            "group": list(members),
            "strategy": args.strategy,
            "latency_ms": round(ms, 3),
            "recommendations": rows,
        }
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
        recs = index.recommend_new_user(
            pairs, args.n, min_ratings=args.min_ratings, genres=genres, order=args.order, hidden=hidden
        )
        who = {"new_user_ratings": len(pairs)}
    else:
        if args.user is None:
            raise ValueError("Say who: --user ID, --new-user FILE or --profile NAME.")
        recs = index.recommend(args.user, args.n, min_ratings=args.min_ratings, genres=genres, order=args.order)
        who = {"user": args.user}
    ms = (time.perf_counter() - t0) * 1000
    payload = {
        "model": folder.name,
        **who,
        "order": args.order,
        "latency_ms": round(ms, 3),
        "recommendations": _records(recs, ["movieId", "title", "genres", "predicted_rating", "n_ratings", "because"]),
    }
    _emit(args, payload, _movie_rows(recs, ["predicted_rating", "movieId", "title"]))
    return EXIT_OK


def _group_members(text: str) -> tuple[dict, list[int]]:
    """ "575,232,sam" -> ({"user 575": 575, "user 232": 232, "sam": sam's stored ratings}, sam's hidden movies)."""
    from ..people.user_ratings import RatingStore

    members, hidden = {}, set()
    with RatingStore(get_settings().ratings_db) as store:
        for token in (t.strip() for t in text.split(",")):
            if token.isdigit():
                members[f"user {token}"] = _id_of(token, "user id")
            elif token:
                ratings = store.ratings(token)
                if not ratings:
                    raise ValueError(
                        f"--group: profile {token!r} has no ratings yet (digits are MovieLens "
                        "user ids; other names are profiles stored with `rate`)."
                    )
                members[token] = ratings
                hidden.update(store.hidden(token))
    return members, sorted(hidden)


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
    payload = {
        "model": folder.name,
        "movie": args.movie,
        **({"also": also} if also else {}),
        "method": args.method,
        "latency_ms": round(ms, 3),
        "similar": _records(recs, ["movieId", "title", "genres", "score", "n_ratings"]),
    }
    _emit(args, payload, _movie_rows(recs, ["score", "movieId", "title"]))
    return EXIT_OK


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
            raise ValueError(
                f"Profile {args.profile!r} has no ratings yet: rate a few movies first "
                "(`rate --profile NAME --movie TITLE --rating R`, or in the app)."
            )
    recs = mood_recommendations(
        args.emotion,
        index.movies,
        args.n,
        args.min_ratings,
        index=index if args.user is not None or ratings else None,
        user_id=args.user,
        ratings=ratings,
        hidden=hidden,
    )
    ms = (time.perf_counter() - t0) * 1000
    who = {"profile": args.profile} if args.profile else {"user": args.user}
    payload = {
        "model": folder.name,
        "emotion": args.emotion,
        **who,
        "latency_ms": round(ms, 3),
        "movies": _records(
            recs, ["movieId", "title", "genres", "score", "predicted_rating", "total_ratings", "n_ratings", "ranked_by"]
        ),
    }
    _emit(args, payload, _movie_rows(recs, ["movieId", "title", "genres"]))
    return EXIT_OK
