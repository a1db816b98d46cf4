"""The project's models against classical peers, on exactly the project's splits and metric code.

    make bench-deps                                   # the peers' libraries (bench/requirements.txt), once
    python bench/bench_ranking.py [--seeds 42,1,2,3] [--svdpp] [--out figures.json]

For each split seed: the project's hash split (``ratings_frame`` + ``split``), then

* the project, as shipped: ``train_and_evaluate`` with the default settings (test RMSE of the bias-corrected
  ALS; P/R/NDCG/MAP@10 of top picks, the app's default order, and of most popular);
* ranking peers, scored by the same ``ranking_metrics`` on the same users (relevant = a test rating >= 4; every
  movie seen in training is a candidate except the user's own): EASE (Steck 2019, numpy), the ``implicit``
  library's ALS, item-kNN (cosine), most popular;
* rating peers, RMSE on the same test ratings: Surprise's SVD, optionally SVD++ (``--svdpp``: minutes per seed),
  and the mean plus regularised biases (numpy).

Every peer's hyper-parameters are chosen on a validation split carved from that seed's training split (the
project's hash split again, seed :data:`VALIDATION_SEED`); the test split is then read once, by the peer refitted
on all of train with the chosen setting. The grids are below: small, so a run takes ~30 min on 2 cores.
``--peers-from`` reuses an earlier run's peers (they do not depend on the project's code) and measures only the
project, ~3 min. MOVIELENS_DATA picks the release.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.spark_release import open_release  # noqa: E402
from engine.recommender.evaluation import RELEVANT_RATING, ranking_metrics, relevant_items  # noqa: E402
from engine.recommender.training import ALSConfig, ratings_frame, split, train_and_evaluate  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from engine.spark import get_spark  # noqa: E402

#: The validation split inside each seed's training split (the same carve as bench_picks.py's).
VALIDATION_SEED = 7
K = 10
EASE_LAMBDAS = [100.0, 200.0, 400.0, 800.0, 1600.0]
#: implicit's ALS: (factors, regularization, alpha), 15 iterations, binary input (every rating a "watched"). Its
#: regularisation is not scaled by counts (Spark's is): on seed 42's validation split, regularization 0.01-1 with
#: alpha 1-20 reached NDCG@10 0.12-0.16, 10-100 with alpha 5-20 up to 0.189, 300-1000 with alpha 50-500 0.13-0.18.
IMPLICIT_GRID = [
    (f, reg, a) for f in (32, 64, 128) for reg, a in ((10.0, 5.0), (30.0, 5.0), (30.0, 10.0), (100.0, 20.0))
]
KNN_NEIGHBOURS = [20, 50, 100, 200]
#: Surprise SVD: (factors, epochs, reg_all), lr_all 0.005 (its default).
SVD_GRID = [(50, 20, 0.02), (100, 50, 0.05), (150, 100, 0.1), (150, 100, 0.05), (200, 100, 0.1)]
BIAS_REGS = [1.0, 2.0, 5.0, 10.0, 15.0, 25.0]


class Matrix:
    """The (user x movie) matrices of one ratings table, ids in sorted order."""

    def __init__(self, ratings: pd.DataFrame):
        self.users = np.sort(ratings.userId.unique())
        self.items = np.sort(ratings.movieId.unique())
        self.row = np.searchsorted(self.users, ratings.userId.to_numpy())
        self.col = np.searchsorted(self.items, ratings.movieId.to_numpy())
        self.rating = ratings.rating.to_numpy(np.float64)
        self.uix = {int(u): i for i, u in enumerate(self.users)}

    def binary(self, dtype=np.float32) -> np.ndarray:
        x = np.zeros((len(self.users), len(self.items)), dtype)
        x[self.row, self.col] = 1.0
        return x

    def csr(self):
        from scipy.sparse import csr_matrix

        ones = np.ones(len(self.row), np.float32)
        return csr_matrix((ones, (self.row, self.col)), shape=(len(self.users), len(self.items)))


def top_k(scores: np.ndarray, fit: Matrix, relevant: dict, k: int = K) -> dict:
    """user -> the k best-scored movies they did not rate in ``fit`` (ties: lower column first)."""
    seen = pd.Series(fit.col).groupby(fit.row).agg(list).to_dict()
    out = {}
    for user in relevant:
        row = fit.uix[user]
        s = scores[row].astype(np.float64).copy()
        s[seen.get(row, [])] = -np.inf
        best = np.argpartition(-s, k)[:k]
        out[user] = fit.items[best[np.argsort(-s[best], kind="stable")]].tolist()
    return out


def relevant_of(test: pd.DataFrame, fit: Matrix) -> dict:
    """The ranking protocol's users: a relevant test rating, and known to the fitted model."""
    return {u: items for u, items in relevant_items(test).items() if u in fit.uix}


# --- ranking peers: scores (users x movies of fit) --------------------------------------------------------------


def popularity_scores(fit: Matrix) -> np.ndarray:
    counts = np.bincount(fit.col, minlength=len(fit.items)).astype(np.float64)
    return np.broadcast_to(counts, (len(fit.users), len(fit.items)))


def ease_scores(fit: Matrix, lam: float) -> np.ndarray:
    x = fit.binary()
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return x @ b.astype(np.float32)


def knn_scores(fit: Matrix, neighbours: int) -> np.ndarray:
    x = fit.binary()
    norms = np.sqrt(x.sum(axis=0)) + 1e-9
    sim = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[1]:  # keep each movie's nearest neighbours
        cut = np.argpartition(-sim, neighbours, axis=1)[:, neighbours:]
        np.put_along_axis(sim, cut, 0.0, axis=1)
    return x @ sim.T


def implicit_scores(fit: Matrix, factors: int, reg: float, alpha: float) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads beside them only contend
        model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha, iterations=15, random_state=0)
        model.fit(fit.csr(), show_progress=False)
    return np.asarray(model.user_factors) @ np.asarray(model.item_factors).T


# --- rating peers: predictions for (userId, movieId) rows ------------------------------------------------------------


def bias_predict(fit: pd.DataFrame, rows: pd.DataFrame, reg: float, rounds: int = 10) -> np.ndarray:
    """mu + b_user + b_movie, each shrunk by ``reg`` and re-estimated in turn ``rounds`` times, clipped."""
    m = Matrix(fit)
    mu = m.rating.mean()
    bu, bi = np.zeros(len(m.users)), np.zeros(len(m.items))
    nu = np.bincount(m.row, minlength=len(m.users))
    ni = np.bincount(m.col, minlength=len(m.items))
    for _ in range(rounds):
        bi = np.bincount(m.col, m.rating - mu - bu[m.row], len(m.items)) / (ni + reg)
        bu = np.bincount(m.row, m.rating - mu - bi[m.col], len(m.users)) / (nu + reg)
    u = pd.Series(bu, m.users).reindex(rows.userId.to_numpy()).fillna(0.0).to_numpy()
    i = pd.Series(bi, m.items).reindex(rows.movieId.to_numpy()).fillna(0.0).to_numpy()
    return np.clip(mu + u + i, 0.5, 5.0)


def surprise_predict(fit: pd.DataFrame, rows: pd.DataFrame, algo) -> np.ndarray:
    from surprise import Dataset, Reader

    data = Dataset.load_from_df(fit[["userId", "movieId", "rating"]], Reader(rating_scale=(0.5, 5.0)))
    algo.fit(data.build_full_trainset())
    return np.array([algo.predict(u, i).est for u, i in zip(rows.userId.to_numpy(), rows.movieId.to_numpy())])


def svd(factors: int, epochs: int, reg: float):
    from surprise import SVD

    return SVD(n_factors=factors, n_epochs=epochs, reg_all=reg, random_state=0)


def rmse_of(pred: np.ndarray, rows: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean((pred - rows.rating.to_numpy()) ** 2)))


# --- choose on validation, read test once -------------------------------------------------------------------------


def ranking_peer(name, scorer, grid, train, test, fit, val, log) -> dict:
    """``scorer(Matrix, *point)`` tuned by validation NDCG@10, then refitted on train and read on test."""
    fit_m = Matrix(fit)
    val_rel = relevant_of(val, fit_m)
    best, best_ndcg = grid[0], -1.0
    for point in grid:
        ndcg = ranking_metrics(top_k(scorer(fit_m, *point), fit_m, val_rel), val_rel, K)["ndcg_at_k"]
        log(f"    {name} {point}: validation NDCG@10 {ndcg:.4f}")
        if ndcg > best_ndcg:
            best, best_ndcg = point, ndcg
    train_m = Matrix(train)
    rel = relevant_of(test, train_m)
    out = ranking_metrics(top_k(scorer(train_m, *best), train_m, rel), rel, K)
    out.update(chosen=list(best), validation_ndcg=round(best_ndcg, 5))
    return out


def rating_peer(name, predict, grid, train, test, fit, val, log) -> dict:
    """``predict(fit, rows, *point)`` tuned by validation RMSE, then refitted on train and read on test."""
    best, best_rmse = grid[0], np.inf
    if len(grid) > 1:
        for point in grid:
            err = rmse_of(predict(fit, val, *point), val)
            log(f"    {name} {point}: validation RMSE {err:.4f}")
            if err < best_rmse:
                best, best_rmse = point, err
    return {
        "rmse": round(rmse_of(predict(train, test, *best), test), 5),
        "chosen": list(best),
        "validation_rmse": None if np.isinf(best_rmse) else round(best_rmse, 5),
    }


def run_seed(spark, release, seed: int, args, log, earlier: dict | None = None) -> dict:
    """The project and the peers on split seed ``seed``; the peers' figures taken from ``earlier`` (a former
    run's result for this seed, on the same split) when given."""
    cfg = ALSConfig(split_seed=seed)
    t0 = time.perf_counter()
    project = train_and_evaluate(spark, release, cfg, progress=lambda f, m: None)["metrics"]
    log(f"  project: test RMSE {project['test_rmse']:.4f}, top picks NDCG@10 {project['top_picks_ndcg_at_10']:.4f}")
    project = {
        "test_rmse": project["test_rmse"],
        **{f"top_picks_{m}": project[f"top_picks_{m}_at_{K}"] for m in ("precision", "recall", "ndcg", "map")},
        "popularity_ndcg": project[f"popularity_ndcg_at_{K}"],
    }
    if earlier is not None:
        if earlier["n_test"] != int(project_n_test(spark, release, cfg)):
            sys.exit(f"--peers-from: seed {seed}'s split has changed since that run; run the peers again.")
        log(f"  peers: from the earlier run ({earlier['n_train']:,} train / {earlier['n_test']:,} test)")
        return {
            **earlier,
            "project": project,
            "peers_from": "earlier run",
            "seconds": round(time.perf_counter() - t0, 1),
        }
    train_df, test_df = split(ratings_frame(spark, release), cfg)
    fit_df, val_df = split(train_df, ALSConfig(split_seed=VALIDATION_SEED))
    train, test, fit, val = (d.toPandas() for d in (train_df, test_df, fit_df, val_df))
    for d in (train_df, test_df, fit_df, val_df):
        d.unpersist()
    log(f"  split: {len(train):,} train / {len(test):,} test; validation {len(fit):,} fit / {len(val):,} held")
    peers = (train, test, fit, val, log)
    ranking = {
        "EASE": ranking_peer("EASE", ease_scores, [(lam,) for lam in EASE_LAMBDAS], *peers),
        "implicit ALS": ranking_peer("implicit", implicit_scores, IMPLICIT_GRID, *peers),
        "item-kNN cosine": ranking_peer("kNN", knn_scores, [(k,) for k in KNN_NEIGHBOURS], *peers),
        "most popular": ranking_peer("popular", lambda m: popularity_scores(m), [()], *peers),
    }
    rating = {
        "SVD (Surprise)": rating_peer("SVD", lambda f, r, *p: surprise_predict(f, r, svd(*p)), SVD_GRID, *peers),
        "mean + regularised biases": rating_peer("biases", bias_predict, [(reg,) for reg in BIAS_REGS], *peers),
    }
    if args.svdpp:
        from surprise import SVDpp

        rating["SVD++ default"] = rating_peer(
            "SVD++", lambda f, r: surprise_predict(f, r, SVDpp(random_state=0)), [()], *peers
        )
    return {
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "project": project,
        "ranking": ranking,
        "rating": rating,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def project_n_test(spark, release, cfg: ALSConfig) -> int:
    """Test ratings of the split ``cfg`` names (a changed split must not borrow an earlier run's peers)."""
    train_df, test_df = split(ratings_frame(spark, release), cfg)
    n = test_df.count()
    train_df.unpersist(), test_df.unpersist()
    return n


def print_tables(results: list[dict]) -> None:
    peers = list(results[0]["ranking"])
    print(f"\nNDCG@{K} on each seed's test split (relevant = rating >= {RELEVANT_RATING:g}); P / R / MAP below")
    print(f"{'seed':>5} {'project top picks':>18} " + " ".join(f"{p:>16}" for p in peers))
    for r in results:
        cells = " ".join(f"{r['ranking'][p]['ndcg_at_k']:16.4f}" for p in peers)
        print(f"{r['seed']:>5} {r['project']['top_picks_ndcg']:18.4f} {cells}")
    mean = lambda xs: float(np.mean(xs))
    cells = " ".join(f"{mean([r['ranking'][p]['ndcg_at_k'] for r in results]):16.4f}" for p in peers)
    print(f"{'mean':>5} {mean([r['project']['top_picks_ndcg'] for r in results]):18.4f} {cells}")
    for r in results:
        p = r["project"]
        print(
            f"  seed {r['seed']}: project P {p['top_picks_precision']:.4f} R {p['top_picks_recall']:.4f} "
            f"MAP {p['top_picks_map']:.4f}; "
            + "; ".join(
                f"{name} P {m['precision_at_k']:.4f} R {m['recall_at_k']:.4f} MAP {m['map_at_k']:.4f} {m['chosen']}"
                for name, m in r["ranking"].items()
            )
        )
    peers = list(results[0]["rating"])
    print("\nTest RMSE on each seed's test split")
    print(f"{'seed':>5} {'project (the stars: blend)':>29} " + " ".join(f"{p:>26}" for p in peers))
    for r in results:
        cells = " ".join(f"{r['rating'][p]['rmse']:26.4f}" for p in peers)
        print(f"{r['seed']:>5} {r['project']['test_rmse']:29.4f} {cells}")
    cells = " ".join(f"{mean([r['rating'][p]['rmse'] for r in results]):26.4f}" for p in peers)
    print(f"{'mean':>5} {mean([r['project']['test_rmse'] for r in results]):29.4f} {cells}")
    for r in results:
        print(f"  seed {r['seed']}: chosen " + "; ".join(f"{n} {m['chosen']}" for n, m in r["rating"].items()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="42,1,2,3")
    ap.add_argument("--svdpp", action="store_true", help="also Surprise's SVD++ with its defaults (slow)")
    ap.add_argument("--out", help="also write the figures as JSON here")
    ap.add_argument(
        "--peers-from",
        metavar="JSON",
        help="an earlier run's --out: take the peers' figures from it (they do not depend on the project's "
        "code; the splits are checked) and measure only the project",
    )
    args = ap.parse_args(argv)
    earlier = {}
    if args.peers_from:
        earlier = {r["seed"]: r for r in json.loads(Path(args.peers_from).read_text())}
    try:
        if not args.peers_from:
            import implicit  # noqa: F401
            import surprise  # noqa: F401
    except ImportError as e:
        sys.exit(f"bench_ranking needs the peers' libraries ({e.name} is missing): run `make bench-deps`.")
    settings = get_settings()
    spark = get_spark(settings)
    release = open_release(spark, settings)
    log = lambda msg: print(msg, flush=True)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        log(f"split seed {seed}:")
        if args.peers_from and seed not in earlier:
            sys.exit(f"--peers-from {args.peers_from} has no split seed {seed}.")
        results.append(run_seed(spark, release, seed, args, log, earlier.get(seed)))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    print_tables(results)


if __name__ == "__main__":
    main()
