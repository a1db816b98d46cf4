"""Shared fixtures: one Spark session per run, generated MovieLens data, the real data."""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

# Import order matters: importing aiortc (the webcam page's WebRTC) after TensorFlow crashes the
# process (a segmentation fault in libsrtp's srtp_init, whose OpenSSL clashes with TensorFlow's
# libraries). The app is safe: only the emotion page loads TensorFlow, after importing
# streamlit_webrtc. Tests run pages in this process in any order, so aiortc comes first here.
import aiortc  # noqa: F401,E402
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
# AppTest runs clear the app's resources and start from a first page view: in the background, each
# would load the emotion networks again (seconds of CPU a test). The page loads them when visited;
# the background load has its own test, and the browser tests' servers run as `make run` does.
os.environ.setdefault("EMOTION_LOAD", "on-demand")


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # as scripts/ensure_chromium.sh finds it
MISSING_MOVIELENS = "real MovieLens data absent: put ml-latest-small.zip in ../shared/data or set MOVIELENS_DATA to it"
MISSING_FER = "FER2013 absent: put fer2013.zip in ../shared/data or set FER2013_DATA"
MISSING_CHROMIUM = "Chromium missing: `make test` installs Debian's (scripts/ensure_chromium.sh)"
MISSING_JAVA = "Java 17+ missing: `make test` says how to install it (scripts/check_java.sh)"


def real_movielens() -> Path | None:
    """ml-latest-small: ``MOVIELENS_DATA`` when set (the real-data tests expect that release),
    else ``../shared/data/ml-latest-small.zip``."""
    env = os.environ.get("MOVIELENS_DATA")
    if env:
        return Path(env) if Path(env).exists() else None
    path = SHARED / "ml-latest-small.zip"
    return path if path.exists() else None


def real_fer() -> Path | None:
    env = os.environ.get("FER2013_DATA")
    if env:
        return Path(env) if Path(env).exists() else None
    path = SHARED / "fer2013.zip"
    return path if path.exists() else None


def has_chromium() -> bool:
    return Path(CHROMIUM).exists()


def has_java() -> bool:
    from engine.spark import java_version

    return (java_version() or 0) >= 17


# ---------------------------------------------------------------- strict runs (CI) vs local runs
def pytest_addoption(parser):
    parser.addoption(
        "--require-all",
        action="store_true",
        help="fail (never skip) when the real data, Chromium or Java is missing; on by default when CI=true",
    )


def strict(config=None) -> bool:
    """CI=true or --require-all: what the suite needs missing is a failure, not a skip."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return True
    config = config or _CONFIG.get("config")
    return bool(config and config.getoption("--require-all"))


_CONFIG: dict = {}
_NOT_RUN: dict[str, int] = {}


def pytest_configure(config):
    _CONFIG["config"] = config


# `make test` runs the files on parallel workers (pytest-xdist, --dist loadfile: a file's tests share a
# worker and its module fixtures). Workers take files in collection order (--no-loadscope-reorder: xdist's
# default orders files by their number of tests instead), so the longest files go first
# and the short ones fill the gaps at the end. The live-webcam soak starts first: it runs for minutes of
# wall time whatever the load (each video plays for SOAK_SECONDS) and overlaps the rest. At the end it ran
# alone on one worker while the other finished the short files. Its memory and liveness checks passed with
# three CPU burners beside it (load ~10; docs/operations.md, "Soak").
LONGEST_FIRST = (  # by their time in the last CI run (ci5: 2 workers, 2 cores)
    "test_soak.py",
    "test_cli.py",
    "test_emotion.py",
    "test_emotion_training.py",
    "test_app.py",
    "test_browser.py",
    "test_cluster.py",
    "test_speed_parity.py",
    "test_serving.py",
    "test_screenshots.py",
    "test_faults_cli.py",
    "test_stats.py",
    "test_faults_injection.py",
    "test_emotion_gpu_script.py",
    "test_training.py",
    "test_detector.py",
    "test_faults_models.py",
    "test_faults_storage.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: order within a file kept


def pytest_sessionstart(session):
    """Under CI, check everything up front: a run missing half its tests fails in its first minute."""
    if not strict(session.config):
        return
    missing = [
        why
        for ok, why in (
            (real_movielens(), MISSING_MOVIELENS),
            (real_fer(), MISSING_FER),
            (has_chromium(), MISSING_CHROMIUM),
            (has_java(), MISSING_JAVA),
        )
        if not ok
    ]
    if missing:
        pytest.exit(
            "CI run (CI=true or --require-all) without what the suite needs:\n  - " + "\n  - ".join(missing),
            returncode=3,
        )


def need(ok, reason: str):
    """Skip with ``reason`` when ``ok`` is falsy, or fail under a strict run; returns ``ok``."""
    if not ok:
        if strict():
            pytest.fail(f"required in a CI run: {reason}", pytrace=False)
        pytest.skip(reason)
    return ok


def pytest_runtest_logreport(report):
    if report.skipped and report.when == "setup" and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        _NOT_RUN[reason] = _NOT_RUN.get(reason, 0) + 1


def pytest_terminal_summary(terminalreporter):
    """Locally, say loudly what did not run (CI fails instead of skipping)."""
    if not _NOT_RUN:
        return
    total = sum(_NOT_RUN.values())
    terminalreporter.section(f"NOT RUN: {total} tests skipped", sep="!", red=True, bold=True)
    for reason, count in sorted(_NOT_RUN.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"  {count:3d} x {reason}", red=True)
    terminalreporter.write_line("  A CI run (CI=true or --require-all) fails on these instead.", bold=True)


@pytest.fixture(scope="session")
def movielens_zip() -> Path:
    return need(real_movielens(), MISSING_MOVIELENS)


@pytest.fixture(scope="session")
def fer_zip() -> Path:
    return need(real_fer(), MISSING_FER)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from engine.settings import get_settings
    from engine.spark import get_spark

    os.environ.setdefault("SPARK_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("spark-ckpt")))
    os.environ["SPARK_SHUFFLE_PARTITIONS"] = "4"
    session = get_spark(get_settings(), app_name="tests", spark__master="local[2]")
    yield session
    session.stop()


def _title(j: int) -> str:
    """Quotes and commas for the CSV readers; some in MovieLens's article-last style and one accented."""
    year = 1980 + j % 40
    if j == 5:
        return f"Café {j + 1}, Le (Coffee {j + 1}, The) ({year})"
    return f"Movie {j + 1}, The ({year})" if j % 10 == 4 else f'Movie {j + 1}, the "sequel" ({year})'


def generate_movielens(n_users=60, n_movies=90, rank=3, density=0.35, seed=0) -> dict[str, str]:
    """A small release with latent structure (so ALS has something to learn), as CSV texts."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, rank))
    v = rng.normal(size=(n_movies, rank))
    genres = ["Action", "Comedy", "Drama", "Romance", "Horror", "Sci-Fi", "Thriller"]
    rows = []
    for i in range(n_users):
        for j in range(n_movies):
            if rng.random() < density:
                raw = 3.2 + 0.7 * (u[i] @ v[j]) / np.sqrt(rank) + 0.3 * rng.normal()
                rows.append(
                    (i + 1, j + 1, float(np.clip(np.round(raw * 2) / 2, 0.5, 5.0)), 1_000_000_000 + i * 1000 + j)
                )
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, n_movies + 1),
            "title": [_title(j) for j in range(n_movies)],
            "genres": [
                "|".join(sorted(set(rng.choice(genres, size=rng.integers(1, 3))))) if j % 17 else "(no genres listed)"
                for j in range(n_movies)
            ],
        }
    )
    tags = pd.DataFrame(
        {
            "userId": [1, 2, 2, 3],
            "movieId": [1, 1, 2, 3],
            "tag": ["funny", "Funny", "dark", "classic"],
            "timestamp": [1_100_000_000] * 4,
        }
    )
    links = pd.DataFrame(
        {
            "movieId": movies["movieId"],
            "imdbId": [f"{100000 + j:07d}" for j in range(n_movies)],
            "tmdbId": [str(500 + j) if j % 5 else "" for j in range(n_movies)],
        }
    )
    to_csv = lambda df: df.to_csv(index=False, lineterminator="\r\n")  # CRLF like the real zip
    return {
        "ratings.csv": to_csv(ratings),
        "movies.csv": to_csv(movies),
        "tags.csv": to_csv(tags),
        "links.csv": to_csv(links),
    }


def write_release(folder: Path, files: dict[str, str | bytes], as_zip: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = folder / "ml-test.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, text in files.items():
                zf.writestr(f"ml-test/{name}", text)
        return path
    for name, text in files.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.fixture(scope="session")
def small_release(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("ml-small"), generate_movielens())


@pytest.fixture(scope="session")
def small_data(small_release):
    from engine.data.movielens import load_movielens

    return load_movielens(small_release)


@pytest.fixture(scope="session")
def small_model(spark, small_data, tmp_path_factory):
    """A model trained (and saved) on the generated release."""
    from engine.recommender.training import ALSConfig

    cfg = ALSConfig(rank=4, max_iter=10, reg_param=0.1, min_ratings=1)
    return _train_and_save(spark, small_data, cfg, tmp_path_factory.mktemp("models-small"))


def _train_and_save(spark, data, cfg, root):
    from engine.recommender.model_store import save_model
    from engine.recommender.training import train_and_evaluate

    result = train_and_evaluate(spark, data, cfg, progress=lambda f, m: None)
    path = save_model(
        root,
        params=result["params"],
        metrics=result["metrics"],
        tables=result["tables"],
        spark_model=result["model"].als_model,
    )
    # Saved as the product saves them (the ratings written by Spark); the tests read them in pandas.
    result["tables"] = {**result["tables"], "ratings": result["tables"]["ratings"].toPandas()}
    result["train_ratings"] = result["train_ratings"].toPandas()
    return root, path, result


@pytest.fixture(scope="session")
def real_data(movielens_zip):
    from engine.data.movielens import load_movielens

    return load_movielens(movielens_zip)


@pytest.fixture(scope="session")
def real_model(spark, real_data, tmp_path_factory):
    """The default model trained on ml-latest-small, once per test run: ``(root, model folder, result)``.

    Under xdist the workers share it (each trained its own before: ~100 s of a 2-core run): the first
    worker to need it trains and saves it, with what the tests compare against (the Spark models,
    the biases, the ratings) beside it, under a lock in the run's shared temp folder; the others wait
    for the lock and read it back into their own Spark session.
    """
    import fcntl

    from engine.recommender.training import ALSConfig

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-N/: every worker's basetemp (popen-gwK) is in it
    root, kept = shared / "models-real", shared / "models-real-reference"
    with open(shared / "models-real.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if training fails
        if (kept / "result.pkl").exists():
            return _read_reference(spark, root, kept)
        shutil.rmtree(root, ignore_errors=True)  # a worker that failed halfway left it
        root.mkdir()
        trained = _train_and_save(spark, real_data, ALSConfig(), root)
        _write_reference(trained, kept)
        return trained


def _write_reference(trained, kept: Path) -> None:
    """What the tests read of a trained result besides its model folder, for another worker."""
    import pickle

    _, path, result = trained
    model = result["model"]
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir()
    model.als_model.write().overwrite().save(str(kept / "als"))
    result["picks_model"].write().overwrite().save(str(kept / "picks"))
    plain = {
        "folder": path.name,
        "metrics": result["metrics"],
        "params": result["params"],
        "tables": result["tables"],  # pandas, the ratings too (_train_and_save)
        "train_ratings": result["train_ratings"],
        "mu": model.mu,
        "user_bias": model.user_bias.toPandas(),
        "item_bias": model.item_bias.toPandas(),
    }
    with open(kept / "result.tmp", "wb") as f:
        pickle.dump(plain, f)
    os.replace(kept / "result.tmp", kept / "result.pkl")  # last: its presence says the rest is there


def _read_reference(spark, root: Path, kept: Path):
    import pickle

    from pyspark.ml.recommendation import ALSModel

    from engine.recommender.als import BiasCorrectedALSModel

    with open(kept / "result.pkl", "rb") as f:
        plain = pickle.load(f)
    model = BiasCorrectedALSModel(
        plain["mu"],
        spark.createDataFrame(plain["user_bias"]),
        spark.createDataFrame(plain["item_bias"]),
        ALSModel.load(str(kept / "als")),
    )
    result = {
        **{k: plain[k] for k in ("metrics", "params", "tables", "train_ratings")},
        "model": model,
        "picks_model": ALSModel.load(str(kept / "picks")),
    }
    return root, root / plain["folder"], result


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update({k: str(v) for k, v in extra.items()})
    return env
