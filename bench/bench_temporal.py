"""The default models on a temporal split beside the random one: does training on the past predict the future?

    python bench/bench_temporal.py [--fraction 0.2]

The project's split (``split``) draws a random fifth of the ratings, so training sees ratings given after the
ones it is tested on. Here each user's last ``--fraction`` of their ratings by timestamp is test (at least one,
users with a single rating stay in train): the engine's ``split`` with ``split_by="time"``, what
``python -m engine evaluate --split-by time`` runs; test keeps only users and movies seen in train. Both splits
get the same default models (``ALSConfig``, ``PicksConfig``), fitted by Spark:

* test RMSE of the bias-corrected ALS and of the bias-only baseline;
* NDCG@10 (P, R, MAP) of top picks by the implicit score alone (every movie seen in training except the
  user's own; relevant = a test rating >= 4) and of most popular. The app's order also holds back movies the
  explicit model rates low, so its figure on the random split (README) differs from this one by ~0.001.

Nothing is tuned here: the settings are the ones chosen on the random split's validation carve.
MOVIELENS_DATA picks the release.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movielens import ITEM, RATING, USER, load_movielens  # noqa: E402
from engine.recommender import picks  # noqa: E402
from engine.recommender.als import bias_baseline_predictions, blocks_for, fit_biases  # noqa: E402
from engine.recommender.evaluation import ranking_metrics, relevant_items, rmse  # noqa: E402
from engine.recommender.training import ALSConfig, ratings_frame, split  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from engine.spark import get_spark  # noqa: E402

K = 10


def measure(spark, train: pd.DataFrame, test: pd.DataFrame, cfg: ALSConfig) -> dict:
    cols = [USER, ITEM, RATING]
    train_df = spark.createDataFrame(train[cols].astype({USER: "int32", ITEM: "int32", RATING: "float32"})).cache()
    test_df = spark.createDataFrame(test[cols].astype({USER: "int32", ITEM: "int32", RATING: "float32"})).cache()
    cfg = replace(cfg, num_blocks=blocks_for(spark, len(train)))  # as train_and_evaluate chooses them
    model = cfg.estimator().fit(train_df)
    test_rmse = rmse(model.transform(test_df).dropna(subset=["prediction"]))
    mu, item_bias, user_bias = fit_biases(train_df, cfg.user_bias_reg, cfg.item_bias_reg)
    bias_rmse = rmse(bias_baseline_predictions(mu, item_bias, user_bias, test_df))
    users_f, items_f = picks.export_factors(picks.fit(train_df, picks.PicksConfig(), blocks=cfg.num_blocks))
    users, items = np.sort(train[USER].unique()), np.sort(train[ITEM].unique())
    scores = picks.align(users_f, USER, users) @ picks.align(items_f, ITEM, items).T
    popularity = train[ITEM].value_counts().reindex(items).to_numpy(np.float64)
    rows = {int(u): i for i, u in enumerate(users)}
    seen = {int(u): np.searchsorted(items, g.to_numpy()) for u, g in train.groupby(USER)[ITEM]}
    relevant = {u: r for u, r in relevant_items(test).items() if u in rows}
    top, pop = {}, {}
    for user in relevant:
        for out, s in ((top, scores[rows[user]].copy()), (pop, popularity.copy())):
            s[seen[user]] = -np.inf
            best = np.argpartition(-s, K)[:K]
            out[user] = items[best[np.argsort(-s[best], kind="stable")]].tolist()
    train_df.unpersist(), test_df.unpersist()
    return {
        "n_train": len(train),
        "n_test": len(test),
        "test_rmse": round(test_rmse, 5),
        "bias_baseline_rmse": round(bias_rmse, 5),
        "top_picks": ranking_metrics(top, relevant, K),
        "popularity": ranking_metrics(pop, relevant, K),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fraction", type=float, default=0.2, help="each user's latest share of ratings as test")
    args = ap.parse_args(argv)
    settings = get_settings()
    data = load_movielens(settings.movielens_data)
    spark = get_spark(settings)
    cfg = ALSConfig()
    timed = replace(cfg, split_by="time", test_fraction=args.fraction)
    rows = []
    for name, protocol in (
        (f"random (hash, seed {cfg.split_seed})", cfg),
        (f"temporal (each user's last {args.fraction:.0%})", timed),
    ):
        t0 = time.perf_counter()
        frame = ratings_frame(spark, data, with_time=protocol.split_by == "time")
        train, test = (d.toPandas() for d in split(frame, protocol))  # the engine's split (evaluate --split-by)
        rows.append((name, measure(spark, train, test, cfg)))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(
        f"\n{'split':36s} {'train':>7s} {'test':>7s} {'RMSE':>7s} {'bias-only':>9s}  top picks P/R/NDCG/MAP@10"
        f"            most popular NDCG@10"
    )
    for name, m in rows:
        t = m["top_picks"]
        print(
            f"{name:36s} {m['n_train']:7,d} {m['n_test']:7,d} {m['test_rmse']:7.4f} {m['bias_baseline_rmse']:9.4f}  "
            f"{t['precision_at_k']:.4f} {t['recall_at_k']:.4f} {t['ndcg_at_k']:.4f} {t['map_at_k']:.4f} "
            f"({t['users']} users)   {m['popularity']['ndcg_at_k']:.4f}"
        )


if __name__ == "__main__":
    main()
