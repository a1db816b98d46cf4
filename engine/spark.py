"""The Spark session, built from settings (``local[*]`` or any master URL).

Functions in ``engine`` take the session as an argument; only entry points (CLI,
app, test fixture) call :func:`get_spark`.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

JAVA_HELP = (
    "Spark needs Java 17 or newer. Install it with `sudo apt-get install -y "
    "openjdk-17-jre-headless` (Debian/Ubuntu) or `brew install openjdk@17` (macOS), "
    "or set JAVA_HOME to an existing JDK 17+."
)


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says what to install or set."""


def java_version() -> int | None:
    """Major version of the Java that Spark would use, or None when there is none."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
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


LOOPBACK = "127.0.0.1"


def _is_local(master: str) -> bool:
    """True for ``local[...]`` and for a standalone master on this machine's loopback."""
    host = re.sub(r"^[a-z]+://", "", master).split(":")[0].split("/")[0]
    return master.startswith("local") or host in ("127.0.0.1", "localhost")


def safe_conf(settings: Settings) -> dict[str, str]:
    """Conf that keeps Spark off the network unless asked: the driver (and its block manager)
    binds to 127.0.0.1 when every executor runs on this machine, and the web UI (no
    authentication, kill links on) is off unless ``SPARK_UI=1``. ``SPARK_CONF`` overrides any."""
    conf = {"spark.ui.enabled": "true" if settings.spark_ui else "false", "spark.ui.killEnabled": "false"}
    if _is_local(settings.spark_master):
        conf.update({"spark.driver.bindAddress": LOOPBACK, "spark.driver.host": LOOPBACK})
    return conf


#: JVM options of the driver and executors (``SPARK_CONF`` may replace them: keep both there).
#: -Xss8m: serialising a task walks its RDD lineage recursively; an ALS fit of 15 iterations (not checkpointed,
#: see engine.recommender.als.checkpoint_interval) overflowed the default 1 MiB thread stack once in a cold JVM.
#: 8 MiB stacks are reserved, used only as deep as a walk goes.
#: -XX:+UseParallelGC: Java 17's default collector (G1) cost a fifth of a train. ALS allocates big short-lived
#: arrays, and G1's concurrent work competes for the cores; the throughput collector does not. A default
#: train + evaluate in a fresh process: 63.8 / 62.8 s with G1, 50.0 / 49.9 s with it (96 against 120 CPU
#: seconds), the same figures; the seed's tuning grid 228 s against 286 s in one run (docs/benchmarks.md). Its
#: full collections stop the JVM, which a batch job does not mind (nothing the app serves waits on Spark).
#: -XX:MaxInlineLevel=3 -XX:FreqInlineSize=50 -XX:InlineSmallCode=500: the JIT's optimising compiler (C2)
#: inlines less deeply and only smaller methods. Compiling was the biggest cost of a train in a fresh JVM
#: (36 of its ~64 JVM CPU seconds: ~29,000 compilations of Spark's, Scala's and the generated query code, on
#: the 2 cores the work needs too); with these limits it is ~21 s and the train 31 s instead of 35-37. The hot
#: loops (ALS's BLAS, hash aggregation) are leaf code the limits barely touch: the tuning grid side by side
#: took 205.6 against 197.3 s, and the figures are the same (docs/benchmarks.md, "Less compiling").
#: -XX:MetaspaceSize=512m: the class metadata a train loads (~200 MB: Spark's classes and the generated query
#: code) first triggers a full collection at 21 MB, then at each new high-water mark: 5 of a cold train's 6 full
#: collections were these. Without them its pauses were 0.68-0.86 s instead of 1.06-1.26 s, the train 29.4 /
#: 29.5 s against 30.4 / 30.6 s. Only the trigger moves: the metadata still shrinks at a collection.
JVM_OPTIONS = (
    "-Xss8m -XX:+UseParallelGC -XX:MaxInlineLevel=3 -XX:FreqInlineSize=50 -XX:InlineSmallCode=500"
    " -XX:MetaspaceSize=512m"
)


def get_spark(settings: Settings | None = None, app_name: str = "movie-recommender", **conf):
    """Build (or reuse) the session: master, shuffle partitions, checkpoint dir, quiet logs.

    Extra Spark conf comes from ``SPARK_CONF`` (JSON) and from ``conf`` keyword
    arguments (dots written as '__', e.g. ``spark__driver__memory="4g"``).
    """
    settings = settings or get_settings()
    extra = {k.replace("__", "."): v for k, v in conf.items()}
    if "spark.master" in extra:
        settings = replace(settings, spark_master=str(extra.pop("spark.master")))
    check_java()
    from pyspark.sql import SparkSession

    if _is_local(settings.spark_master):
        # The web UI, when on, binds to SPARK_LOCAL_IP (else every interface); read at JVM start.
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        # Python tasks run in this interpreter, not whichever `python3` is on PATH (another version would
        # refuse to run them). The engine's jobs run none (EASE's Gram is built in the JVM); a cluster's
        # workers: PYSPARK_PYTHON.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "4g")
        .config("spark.cleaner.referenceTracking.cleanCheckpoints", "true")
        .config("spark.sql.session.timeZone", "UTC")  # calendar years as pandas counts them
        .config("spark.driver.extraJavaOptions", JVM_OPTIONS)  # deep lineages, the throughput collector
        .config("spark.executor.extraJavaOptions", JVM_OPTIONS)
    )
    for key, value in {**safe_conf(settings), **settings.spark_conf, **extra}.items():
        builder = builder.config(key, str(value))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start failures have no common base class
        raise SparkUnavailable(
            f"Spark could not start on master {settings.spark_master!r}: {exc}. {JAVA_HELP}"
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    # Without a checkpoint dir, ALS with >= 20 iterations overflows the stack on long lineages.
    spark.sparkContext.setCheckpointDir(checkpoint_dir(settings.spark_checkpoint_dir))
    return spark


def checkpoint_dir(base: str) -> str:
    """This process's own checkpoint folder under ``base``, after removing leftovers.

    Each process checkpoints under ``base/run-<pid>`` (removed when it exits); the folders of
    processes that are gone (killed runs) and Spark's older top-level folders are removed now.
    A URI (``hdfs://``, ``s3a://``) is used as it is: its storage has its own retention.
    """
    if "://" in base:
        return base
    os.makedirs(base, exist_ok=True)
    mine = os.path.join(base, f"run-{os.getpid()}")
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if path != mine and os.path.isdir(path) and not _alive(name):
            shutil.rmtree(path, ignore_errors=True)
    if mine not in _OWN_CHECKPOINTS:
        _OWN_CHECKPOINTS.add(mine)
        atexit.register(shutil.rmtree, mine, True)
    os.makedirs(mine, exist_ok=True)
    return mine


_OWN_CHECKPOINTS: set[str] = set()  # folders this process removes at exit


def _alive(name: str) -> bool:
    """True when ``name`` is ``run-<pid>`` of a process that still runs."""
    m = re.fullmatch(r"run-(\d+)", name)
    if not m:
        return False  # Spark's own uuid folders from before: leftovers
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class SparkStarter:
    """Starts the session in a background thread and says how far it got, so a page never blocks
    for the JVM's start (20-60 s on a busy machine) unless it needs Spark now.

    ``state`` is "starting", "ready" or "unavailable" (``error`` then says why, with what to do).
    The app holds one per server process and starts it at the first page view.

    >>> starter = SparkStarter(start=lambda: "session")   # doctest: +SKIP
    >>> starter.start().wait(timeout=60)                   # doctest: +SKIP
    'session'
    """

    def __init__(self, settings: Settings | None = None, start=None):
        import threading

        self._settings = settings
        self._start = start or (lambda: get_spark(self._settings or get_settings()))
        self._imports_pyspark = start is None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self.session, self.error = None, None
        self.started = self.finished = None

    def start(self, retry: bool = False) -> "SparkStarter":
        """Begin starting Spark (once; later calls return at once). ``retry``: start again when
        the last start failed (Java installed meanwhile, a master back up)."""
        import threading
        import time

        with self._lock:
            if self._thread is None or (retry and self.state == "unavailable"):
                self._done.clear()
                self.session, self.error, self.finished = None, None, None
                self.started = time.time()
                if self._imports_pyspark and importlib.util.find_spec("pyspark") is not None:
                    # pyspark's modules are imported here, in the caller's thread (~0.4 s), not in the
                    # starter beside the page's own first imports (TensorFlow, aiortc): one fresh server
                    # opened straight on the webcam page stopped answering while both ran at once.
                    # (Without pyspark, get_spark in the thread says what is missing.)
                    importlib.import_module("pyspark.sql")
                self._thread = threading.Thread(target=self._run, name="spark-starter", daemon=True)
                self._thread.start()
        return self

    def _run(self) -> None:
        import time

        try:
            self.session = self._start()
        except SparkUnavailable as exc:
            self.error = str(exc)
        except Exception as exc:  # a JVM or py4j failure has no common base class
            log.exception("Spark did not start")
            self.error = f"Spark did not start: {type(exc).__name__}: {exc}"
        finally:
            self.finished = time.time()
            self._done.set()

    @property
    def state(self) -> str:
        if self._thread is None or not self._done.is_set():
            return "starting"
        return "ready" if self.session is not None else "unavailable"

    def seconds(self, now: float | None = None) -> float:
        """Seconds the start took (or has taken so far)."""
        import time

        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started

    def wait(self, timeout: float | None = None):
        """The session, once started; raises :class:`SparkUnavailable` when it could not start
        (or ``TimeoutError`` after ``timeout`` seconds)."""
        self.start()
        if not self._done.wait(timeout):
            raise TimeoutError(f"Spark has not started after {timeout:g} s.")
        if self.session is None:
            raise SparkUnavailable(self.error)
        return self.session
