"""The predicted stars' blend: its weights from a validation split, then test RMSE per split seed.

    python bench/bench_blend.py [--validate] [--seeds 42,1,2,3]

``--validate``: split seed 42's training split is carved again (hash split seed 7; test untouched). On the
carved train Spark fits the default bias-corrected ALS, the top-picks model and the movie neighbours; on the
carved-out validation ratings it scores the three predictions (``blend_components``) and fits the blend's
weights by least squares (``fit_blend``): the figures ``DEFAULT_BLEND`` holds. Each prediction alone and the
pairs are printed beside it.

Then, for each split seed, the app's default train (``train_and_evaluate``, the shipped weights) reports the
test RMSE of the blend and of the bias-corrected ALS alone; the test split of each seed is read once.
MOVIELENS_DATA picks the release.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movielens import RATING  # noqa: E402
from engine.data.spark_release import open_release  # noqa: E402
from engine.recommender import neighbours, picks  # noqa: E402
from engine.recommender.als import blocks_for  # noqa: E402
from engine.recommender.training import ALSConfig, ratings_frame, split, train_and_evaluate  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from engine.spark import get_spark  # noqa: E402


def _rmse(y, p) -> float:
    return float(np.sqrt(np.mean((y - np.clip(p, 0.5, 5.0)) ** 2)))


def validate(spark, release) -> None:
    cfg = ALSConfig()
    train, _ = split(ratings_frame(spark, release), cfg)
    fit, val = split(train, replace(cfg, split_seed=7))
    cfg = replace(cfg, num_blocks=blocks_for(spark, release.n_ratings))
    t0 = time.perf_counter()
    model = cfg.estimator().fit(fit)
    picks_model = picks.fit(fit, picks.PicksConfig(), blocks=cfg.num_blocks)
    t1 = time.perf_counter()
    found = neighbours.movie_neighbours(neighbours.residuals_of(fit, model), neighbours.NeighbourConfig()).cache()
    n_pairs = found.count()
    t2 = time.perf_counter()
    parts = neighbours.blend_components(val, model, picks_model, found, fit).toPandas()
    y = parts[RATING].to_numpy(float)
    print(f"validation: {len(parts):,} ratings; fits {t1 - t0:.1f} s, neighbours {t2 - t1:.1f} s ({n_pairs:,} pairs)")
    for name in ("explicit", "neighbourhood"):
        print(f"  {name} alone: RMSE {_rmse(y, parts[name].to_numpy()):.4f}")
    for cols in (("explicit", "neighbourhood"), ("explicit", "picks")):
        x = np.column_stack([np.ones(len(parts)), *(parts[c].to_numpy(float) for c in cols)])
        w = np.linalg.lstsq(x, y, rcond=None)[0]
        print(f"  {' + '.join(cols)}: RMSE {_rmse(y, x @ w):.4f}, weights {np.round(w, 3).tolist()}")
    blend = neighbours.fit_blend(parts)
    x = np.column_stack([np.ones(len(parts)), parts["explicit"], parts["neighbourhood"], parts["picks"]])
    w = np.array([blend.intercept, blend.explicit, blend.neighbourhood, blend.picks])
    print(f"  all three: RMSE {_rmse(y, x @ w):.4f}, {blend}")
    shipped = neighbours.DEFAULT_BLEND
    w = np.array([shipped.intercept, shipped.explicit, shipped.neighbourhood, shipped.picks])
    print(f"  shipped DEFAULT_BLEND: RMSE {_rmse(y, x @ w):.4f}")
    found.unpersist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validate", action="store_true", help="fit the weights on seed 42's validation split first")
    ap.add_argument("--seeds", default="42,1,2,3", help="split seeds to report test RMSE for ('' for none)")
    args = ap.parse_args()
    settings = get_settings()
    spark = get_spark(settings)
    release = open_release(spark, settings)
    if args.validate:
        validate(spark, release)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        t0 = time.perf_counter()
        result = train_and_evaluate(
            spark, release, ALSConfig(split_seed=seed), progress=lambda *_: None, compare_baselines=False
        )
        m = result["metrics"]
        rows.append((seed, m["test_rmse"], m["explicit_rmse"], m.get("neighbours_seconds"), time.perf_counter() - t0))
        print(
            f"seed {seed}: test RMSE blend {m['test_rmse']:.4f}, bias-corrected ALS alone {m['explicit_rmse']:.4f}; "
            f"neighbours {m.get('neighbours_seconds')} s, train + evaluate {rows[-1][-1]:.1f} s",
            flush=True,
        )
    if rows:
        print(
            f"mean over seeds {', '.join(str(r[0]) for r in rows)}: blend {np.mean([r[1] for r in rows]):.4f}, "
            f"ALS alone {np.mean([r[2] for r in rows]):.4f}"
        )


if __name__ == "__main__":
    main()
