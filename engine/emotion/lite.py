"""Run a Keras emotion network through LiteRT (TensorFlow Lite) with its XNNPACK CPU kernels.

Why: at the batch sizes a webcam gives (one or two faces), a ``tf.function`` call
spends most of its time in TensorFlow's per-operation overhead, not in arithmetic.
The same network converted to a LiteRT flatbuffer and run by the LiteRT interpreter
(XNNPACK) answers the same scores (within 1e-5) several times faster: on the slow
2-core host one 1.72 M-parameter network went from p50 4.3 ms to 1.1 ms per face,
and a batch of 512 faces from 1.1 s to 0.54 s (``bench/bench_emotion.py``).

The conversion is Keras's own ``model.export(format="litert")`` (a few seconds per
network; nothing is downloaded), run in a child process: the converter's memory goes
back when the child exits, and a converter that crashes cannot take the app's server
down with it (the recognizer then falls back to TensorFlow). Networks loaded from a
file keep their conversion in ``<ENGINE_DATA_DIR>/litert-cache``, named by the sha256
of the model file, the network's place in it and the versions that converted it, so
the next start skips it; a damaged or missing cache file is simply converted again. Beside them a
small JSON says how many networks the file holds: a later load then runs the cached conversions
without importing Keras or TensorFlow at all (:func:`cached_networks`). An interpreter is
not thread-safe, and live video calls from a WebRTC worker thread while photos are
analysed in the page's thread, so every call holds the network's lock.

Example:
    >>> [net] = compile_networks([keras_model])           # doctest: +SKIP
    >>> net(np.zeros((2, 48, 48, 1), np.float32)).shape  # doctest: +SKIP
    (2, 7)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

THREADS = 2  # XNNPACK threads per network: measured on 2 cores, see bench/bench_emotion.py
CACHE_DIR = "litert-cache"  # inside ENGINE_DATA_DIR

# What the child process runs: each NAME.keras -> NAME.tflite (plain Keras layers, no engine import).
_CONVERT = """
import sys
import keras
for path in sys.argv[1:]:
    keras.models.load_model(path, compile=False).export(path[:-len(".keras")] + ".tflite",
                                                        format="litert", verbose=False)
"""


def to_litert(models: list) -> list[bytes]:
    """The LiteRT flatbuffers (any batch size) of Keras models, converted in one child process."""
    with tempfile.TemporaryDirectory(prefix="emotion-litert-") as tmp:
        paths = [Path(tmp) / f"net{i}.keras" for i in range(len(models))]
        for model, path in zip(models, paths):
            model.save(path)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT, *map(str, paths)], env=env, capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            raise RuntimeError(f"the converter exited with {done.returncode}: {done.stderr.strip()[-600:]}")
        return [path.with_suffix(".tflite").read_bytes() for path in paths]


def _version(*distributions: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "none"


def _cache_names(model_file: Path) -> tuple[str, str]:
    """(content digest, converter versions) of a model file's cache names, read without importing
    Keras or TensorFlow (their installed versions are the packages' metadata)."""
    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:20]  # read once for all
    tf_version = _version("tensorflow", "tensorflow-cpu")
    return digest, f"keras{_version('keras')}-tf{tf_version}-litert{_version('ai-edge-litert')}"


def cache_keys(model_file: Path, networks: int) -> list[str]:
    """The cache names of a model file's networks: its content, their place, the converter's versions."""
    digest, versions = _cache_names(model_file)
    return [f"{digest}-net{k}-{versions}" for k in range(networks)]


def _cache_dir() -> Path:
    from ..settings import get_settings

    return get_settings().data_dir / CACHE_DIR


def record_networks(model_file: Path, names: list[str], outputs: int) -> None:
    """Note beside the cached conversions what a load needs to run them without Keras: how many
    networks the file holds, their names and their number of outputs (see :func:`cached_networks`)."""
    digest, versions = _cache_names(model_file)
    about = json.dumps({"networks": len(names), "names": names, "outputs": outputs})
    _store(_cache_dir() / f"{digest}-{versions}.json", about.encode())


def cached_networks(model_file: Path) -> tuple[list[LiteNetwork], int] | None:
    """(interpreters, outputs) of a model file's networks straight from the cache, without loading
    Keras or TensorFlow (~4 s and hundreds of MB of a server's memory): when an earlier load of the
    same file with the same versions recorded them and every conversion is there and readable;
    otherwise None (the caller loads the file, converting what is missing)."""
    digest, versions = _cache_names(model_file)
    cache = _cache_dir()
    try:
        about = json.loads((cache / f"{digest}-{versions}.json").read_text())
        names, outputs = list(about["names"]), int(about["outputs"])
        return [
            LiteNetwork((cache / f"{digest}-net{k}-{versions}.tflite").read_bytes(), name)
            for k, name in enumerate(names)
        ], outputs
    except (OSError, ValueError, KeyError, TypeError) as exc:  # missing, damaged: the full load
        log.info("LiteRT cache of %s not usable on its own (%s): loading the model file", model_file, exc)
        return None


class LiteNetwork:
    """A LiteRT flatbuffer behind an interpreter: float32 (n, 48, 48, 1) -> (n, classes) numpy."""

    def __init__(self, content: bytes, name: str = "network", threads: int = THREADS):
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        self._interpreter = Interpreter(model_content=content, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            if len(x) != self._batch:  # re-plan the buffers for this batch size
                self._interpreter.resize_tensor_input(self._input, list(x.shape))
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()


def _lite_networks(models: list, keys: list[str | None]) -> list[LiteNetwork]:
    """Interpreters for ``models``: cached conversions where ``keys`` name good ones, the rest converted."""
    cache = _cache_dir()
    nets: list[LiteNetwork | None] = [None] * len(models)
    for i, key in enumerate(keys):
        file = cache / f"{key}.tflite" if key else None
        if file is not None and file.is_file():
            try:
                nets[i] = LiteNetwork(file.read_bytes(), models[i].name)
            except ValueError:  # a damaged cache file: convert again, and replace it
                log.warning("%s is not a LiteRT model; converting again", file)
    missing = [i for i, net in enumerate(nets) if net is None]
    if missing:
        for i, content in zip(missing, to_litert([models[i] for i in missing])):
            nets[i] = LiteNetwork(content, models[i].name)
            if keys[i]:
                _store(cache / f"{keys[i]}.tflite", content)
    return nets


def _store(file: Path, content: bytes) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, file)  # atomic: a concurrent start reads a whole file or none
    except OSError as exc:  # a read-only data folder only costs the next start the conversion
        log.warning("could not cache the LiteRT conversion in %s (%s)", file.parent, exc)


def compile_networks(models: list, keys: list[str | None] | None = None) -> list:
    """The fastest runnable form of each model: :class:`LiteNetwork`, or a ``tf.function``.

    ``keys`` (see :func:`cache_keys`) keep the conversions on disk under those names.
    The ``tf.function`` (one traced graph for any batch size) is the fallback when the
    conversion or the interpreter fails; ``EMOTION_RUNTIME=tensorflow`` asks for it.
    Both return numpy arrays.
    """
    from ..settings import get_settings

    if get_settings().emotion_runtime == "litert":
        try:
            return _lite_networks(models, keys or [None] * len(models))
        except Exception as exc:  # noqa: BLE001 - any failure leaves the TensorFlow path working
            log.warning(
                "LiteRT conversion of %s failed (%s: %s); running with TensorFlow",
                ", ".join(m.name for m in models),
                type(exc).__name__,
                exc,
            )
    return [_tf_function(m) for m in models]


def _tf_function(model):
    import tensorflow as tf

    from .dataset import IMAGE_SIZE

    spec = [tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32)]
    graph = tf.function(lambda x: model(x, training=False), reduce_retracing=True, input_signature=spec)
    return lambda x: graph(x).numpy()


def runtime_of(forward) -> str:
    """'litert' or 'tensorflow': how a compiled network runs."""
    return "litert" if isinstance(forward, LiteNetwork) else "tensorflow"
