"""One place for every setting, each overridable by an environment variable.

The same code runs on a laptop (``local[*]``, data beside the checkout) or on a
Spark cluster (``SPARK_MASTER=spark://...``, ``MOVIELENS_DATA=s3a://...``).

Example:
    >>> from engine.settings import get_settings
    >>> get_settings().spark_master
    'local[*]'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The seed's emotion -> genres mapping; ``MOOD_GENRES`` (JSON) overrides it.
DEFAULT_MOOD_GENRES: dict[str, list[str]] = {
    "happy": ["Romance", "Comedy"],
    "sad": ["Drama"],
    "angry": ["Action", "Thriller"],
    "disgust": ["Horror"],
    "fear": ["Thriller", "Horror"],
    "surprise": ["Mystery", "Sci-Fi"],
    "neutral": ["Drama", "Comedy"],
}


def _default_movielens() -> str:
    shared = REPO_ROOT.parent / "shared" / "data" / "ml-latest-small.zip"
    if shared.exists():
        return str(shared)
    fetched = REPO_ROOT / "data" / "ml-latest-small.zip"
    fallback = REPO_ROOT / "data" / "ml-100k-from-recbole.zip"  # see engine/data/fetch.py
    return str(fallback if fallback.exists() and not fetched.exists() else fetched)


def _json_env(name: str, default):
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Environment variable {name} is not valid JSON ({exc}); fix or unset it.") from exc


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`get_settings`, never by hand in app code."""

    movielens_data: str
    data_dir: Path
    model_dir: Path
    emotion_model_dir: Path
    ratings_db: Path
    spark_master: str
    spark_conf: dict = field(default_factory=dict)
    spark_checkpoint_dir: str = ""
    shuffle_partitions: int = 8
    mood_genres: dict = field(default_factory=lambda: dict(DEFAULT_MOOD_GENRES))
    rtc_ice_servers: list = field(default_factory=list)
    emotion_runtime: str = "litert"  # "litert": LiteRT/XNNPACK interpreter; "tensorflow": tf.function
    max_member_bytes: int = 2 << 30  # largest data file read (inflated); ml-32m ratings.csv is 0.9 GB
    spark_ui: bool = False  # Spark's web UI (no authentication; kill enabled): off unless asked
    admin_password: str = ""  # set: tuning, training and model switching/deletion need it in the app
    spark_start: str = "background"  # the app starts Spark at its first page view; "on-demand": when a page needs it
    emotion_load: str = "background"  # the app loads the emotion networks at its first page view; or "on-demand"


def get_settings() -> Settings:
    """Read the environment now (cheap; call it where a setting is needed)."""
    data_dir = Path(os.environ.get("ENGINE_DATA_DIR", REPO_ROOT / "data"))
    model_dir = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models" / "als"))
    return Settings(
        movielens_data=os.environ.get("MOVIELENS_DATA") or _default_movielens(),
        data_dir=data_dir,
        model_dir=model_dir,
        emotion_model_dir=Path(os.environ.get("EMOTION_MODEL_DIR", REPO_ROOT / "models" / "emotion")),
        ratings_db=Path(os.environ.get("RATINGS_DB", data_dir / "user_ratings.sqlite")),
        spark_master=os.environ.get("SPARK_MASTER", "local[*]"),
        spark_conf=_json_env("SPARK_CONF", {}),
        spark_checkpoint_dir=os.environ.get("SPARK_CHECKPOINT_DIR", str(data_dir / "spark-checkpoints")),
        shuffle_partitions=int(os.environ.get("SPARK_SHUFFLE_PARTITIONS", "8")),
        mood_genres=_json_env("MOOD_GENRES", dict(DEFAULT_MOOD_GENRES)),
        rtc_ice_servers=_json_env("RTC_ICE_SERVERS", []),
        emotion_runtime=_choice_env("EMOTION_RUNTIME", ("litert", "tensorflow")),
        max_member_bytes=int(os.environ.get("MAX_MEMBER_MB", "2048")) << 20,
        spark_ui=_choice_env("SPARK_UI", ("0", "1")) == "1",
        admin_password=os.environ.get("ADMIN_PASSWORD", ""),
        spark_start=_choice_env("SPARK_START", ("background", "on-demand")),
        emotion_load=_choice_env("EMOTION_LOAD", ("background", "on-demand")),
    )


def _choice_env(name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` from the environment (the first when unset)."""
    raw = os.environ.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ValueError(
            f"Environment variable {name}={os.environ[name]!r}: use one of {', '.join(choices)}, or unset it."
        )
    return raw
