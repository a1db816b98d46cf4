"""The Spark session, built from settings (``local[*]`` or any master URL).

Functions in ``engine`` take the session as an argument; only entry points (CLI,
app, test fixture) call :func:`get_spark`.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

JAVA_HELP = ("Spark needs Java 17 or newer. Install it with `sudo apt-get install -y "
             "openjdk-17-jre-headless` (Debian/Ubuntu) or `brew install openjdk@17` (macOS), "
             "or set JAVA_HOME to an existing JDK 17+.")


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says what to install or set."""


def java_version() -> int | None:
    """Major version of the Java that Spark would use, or None when there is none."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") \
        else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def check_java() -> None:
    """Raise :class:`SparkUnavailable` unless Java 17+ is available."""
    version = java_version()
    if version is None:
        raise SparkUnavailable(f"No Java found. {JAVA_HELP}")
    if version < 17:
        raise SparkUnavailable(f"Java {version} found. {JAVA_HELP}")


def get_spark(settings: Settings | None = None, app_name: str = "movie-recommender", **conf):
    """Build (or reuse) the session: master, shuffle partitions, checkpoint dir, quiet logs.

    Extra Spark conf comes from ``SPARK_CONF`` (JSON) and from ``conf`` keyword
    arguments (dots written as '__', e.g. ``spark__driver__memory="4g"``).
    """
    settings = settings or get_settings()
    check_java()
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.appName(app_name).master(settings.spark_master)
               .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.memory", "4g")
               .config("spark.sql.session.timeZone", "UTC"))  # calendar years as pandas counts them
    for key, value in {**settings.spark_conf,
                       **{k.replace("__", "."): v for k, v in conf.items()}}.items():
        builder = builder.config(key, str(value))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start failures have no common base class
        raise SparkUnavailable(f"Spark could not start on master {settings.spark_master!r}: "
                               f"{exc}. {JAVA_HELP}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    checkpoint = settings.spark_checkpoint_dir
    if "://" not in checkpoint:
        os.makedirs(checkpoint, exist_ok=True)
    # Without a checkpoint dir, ALS with >= 20 iterations overflows the stack on long lineages.
    spark.sparkContext.setCheckpointDir(checkpoint)
    return spark
