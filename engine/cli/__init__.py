"""``python -m engine fetch|prepare-data|stats|train|tune|evaluate|models|recommend|similar|about|rate|mood``.

Progress goes to stderr; with ``--json`` exactly one JSON object goes to stdout, a failure's
too (``{"error": ..., "code": N}``, usage errors included).
Exit codes: 0 ok, 2 bad input (data, ids, ratings), 3 no or broken model,
4 Spark/Java unavailable, 1 anything else.
"""

# The commands live by area, as engine's packages do: data.py (fetch, prepare-data, stats, about),
# recommender.py (train, tune, evaluate, models, recommend, similar, mood), people.py (rate); what they
# share (exit codes, errors, --json output) in common.py. Here: the parser and the dispatch.
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..recommender.serving import ORDERS
from .common import (
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_SPARK,
    JsonArgumentParser,
    _at_least_zero,
    _count,
    print_error,
)
from .data import cmd_about, cmd_fetch, cmd_prepare_data, cmd_stats
from .people import cmd_rate
from .recommender import cmd_evaluate, cmd_models, cmd_mood, cmd_recommend, cmd_similar, cmd_train, cmd_tune

log = logging.getLogger("engine.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = JsonArgumentParser(
        prog="python -m engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    for name, func, text in (
        ("train", cmd_train, "train and save the default model"),
        ("tune", cmd_tune, "cross-validated grid search"),
        ("evaluate", cmd_evaluate, "re-run the evaluation protocol"),
    ):
        p = add(name, func, text)
        p.add_argument("--rank", type=int)
        p.add_argument("--max-iter", type=int)
        p.add_argument("--reg-param", type=float)
        p.add_argument("--split-seed", type=int)
        p.add_argument("--seed", type=int)
    sub.choices["train"].add_argument(
        "--include-user-ratings", action="store_true", help="add the ratings stored by the app (SQLite)"
    )
    for name in ("train", "tune"):
        sub.choices[name].add_argument(
            "--force-current",
            action="store_true",
            help="make the new model current even when its test RMSE is worse than the bias-only baseline's "
            "(such a model is otherwise saved but not made current)",
        )
    t = sub.choices["tune"]
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--ranks", help="e.g. 8,16,32")
    t.add_argument("--iters", help="e.g. 10,15,20")
    t.add_argument("--regs", help="e.g. 0.05,0.1,0.2")
    t.add_argument("--train-best", action="store_true", help="train and save the best model")
    t.add_argument(
        "--parallelism",
        type=_count,
        default=2,
        help="fits at once (default 2: on 2 cores they hide each other's job overhead)",
    )
    t.add_argument(
        "--blocks",
        type=_at_least_zero,
        default=0,
        help="ALS blocks per fit (default 0: one per core; 10: Spark's default, slower)",
    )
    sub.choices["evaluate"].add_argument(
        "--saved", action="store_true", help="print the current model's stored metrics"
    )
    sub.choices["evaluate"].add_argument(
        "--split-by",
        choices=("random", "time"),
        help="random: the seeded hash split models are trained on (default); "
        "time: each user's last 20%% of ratings by timestamp is test (training never sees the future)",
    )
    p = add("models", cmd_models, "list the saved models; make one current or delete one")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--use", metavar="NAME", help="make this saved model the current one")
    act.add_argument("--delete", metavar="NAME", help="delete this saved model (not the current one)")
    p = add("recommend", cmd_recommend, "top-N movies for a user (no Spark)")
    p.add_argument("--user", type=int)
    p.add_argument(
        "--new-user",
        metavar="FILE",
        help="ratings of someone new: a CSV of movieId,rating, an IMDb ratings export or a Letterboxd ratings.csv",
    )
    p.add_argument("--profile", help="a profile stored with `rate`")
    p.add_argument(
        "--group",
        metavar="MEMBERS",
        help="a movie night: comma-separated MovieLens user ids and profile names, e.g. 575,232,sam",
    )
    p.add_argument(
        "--strategy",
        choices=["misery", "average"],
        default="misery",
        help="with --group: misery (default): the best lowest predicted rating in the group; average: the best mean",
    )
    p.add_argument("-n", type=_count, default=10)
    p.add_argument(
        "--min-ratings",
        type=_at_least_zero,
        default=20,
        help="leave out movies with fewer training ratings (default 20)",
    )
    p.add_argument("--genres", help="comma-separated, e.g. Comedy,Drama")
    p.add_argument(
        "--order",
        choices=list(ORDERS),
        default="rating",
        help="rating: highest predicted rating first (default); picks: top picks, the "
        "movies the user is most likely to watch and like (implicit ALS blended with EASE)",
    )
    p.add_argument("--model", help="model folder (default: current)")
    p = add("similar", cmd_similar, "movies similar to one movie")
    p.add_argument("--movie", required=True, help='an id or a title, e.g. 2571 or "the matrix"')
    p.add_argument(
        "--also",
        action="append",
        metavar="MOVIE",
        help="another movie to be like at the same time (repeatable; exact method)",
    )
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
    what.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE",
        help="add the ratings of a CSV: movieId,rating (this app's export, MovieLens), "
        "an IMDb ratings export or a Letterboxd ratings.csv",
    )
    what.add_argument("--export", metavar="FILE", help="write the profile's ratings as CSV ('-': stdout)")
    p.add_argument(
        "--replace", action="store_true", help="with --import: the file's rating replaces one already stored"
    )
    p.add_argument("--rating", type=float)
    p.add_argument("--remove", action="store_true", help="with --movie: delete its rating")
    p.add_argument(
        "--hide",
        action="store_true",
        help="with --movie: not interested (left out of the profile's lists, movie nights, moods)",
    )
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


def main(argv: list[str] | None = None) -> int:
    from ..data.movielens import DataError
    from ..recommender.model_store import ModelError
    from ..recommender.serving import RatingInputError, UnknownIdError
    from ..spark import SparkUnavailable

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (DataError, UnknownIdError, RatingInputError, ValueError) as exc:
        code, message = EXIT_INPUT, str(exc)
    except ModelError as exc:
        code, message = EXIT_MODEL, str(exc)
    except SparkUnavailable as exc:
        code, message = EXIT_SPARK, str(exc)
    except Exception as exc:  # a fault nobody foresaw: still one message (and, with -v, the traceback)
        log.info("unexpected failure", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]  # a Java error's first line, not its trace
        code, message = (
            EXIT_ERROR,
            (
                f"unexpected {type(exc).__name__}: {first} (run again with -v for "
                "the traceback; report it if it persists)."
            ),
        )
    return print_error(message, code, args.json)
