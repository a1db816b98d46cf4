"""Run a Keras emotion network through LiteRT (TensorFlow Lite) with its XNNPACK CPU kernels.

Why: at the batch sizes a webcam gives (one or two faces), a ``tf.function`` call
spends most of its time in TensorFlow's per-operation overhead, not in arithmetic.
The same network converted to a LiteRT flatbuffer and run by the LiteRT interpreter
(XNNPACK) answers the same scores (within 1e-6) several times faster: on the slow
2-core host, the 1.7 M-parameter network went from ~5 ms to ~2-3 ms per face and
the 0.43 M-parameter live network from ~4 ms to ~0.7 ms (``bench/bench_emotion.py``).

The conversion is Keras's own ``model.export(format="litert")`` (a few seconds per
network; nothing is downloaded). Networks loaded from a file keep their conversion
in ``<ENGINE_DATA_DIR>/litert-cache``, named by the sha256 of the model file, the
network's place in it and the versions that converted it, so the next start skips
it; a damaged or missing cache file is simply converted again. An interpreter is
not thread-safe, and live video calls from a WebRTC worker thread while photos are
analysed in the page's thread, so every call holds the network's lock.

Example:
    >>> net = LiteNetwork(keras_model)              # doctest: +SKIP
    >>> net(np.zeros((2, 48, 48, 1), np.float32)).shape  # doctest: +SKIP
    (2, 7)
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

THREADS = 2  # XNNPACK threads per network: measured on 2 cores, see bench/bench_emotion.py


def to_litert(model) -> bytes:
    """The LiteRT flatbuffer of a Keras model (any batch size), converted in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="emotion-litert-") as tmp:
        path = Path(tmp) / "model.tflite"
        model.export(str(path), format="litert", verbose=False)
        return path.read_bytes()


def cache_key(model_file: Path, network: str) -> str:
    """The cache name of one network of a model file: its content, its place, the converter's versions."""
    import keras
    import tensorflow as tf
    from ai_edge_litert import __version__ as litert_version
    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:20]
    return f"{digest}-{network}-keras{keras.__version__}-tf{tf.__version__}-litert{litert_version}"


def _cached_litert(model, key: str | None) -> bytes:
    if key is None:
        return to_litert(model)
    from ..settings import get_settings
    cache = get_settings().data_dir / "litert-cache" / f"{key}.tflite"
    if cache.is_file():
        return cache.read_bytes()
    content = to_litert(model)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, cache)  # atomic: a concurrent start reads a whole file or none
    except OSError as exc:  # a read-only data folder only costs the next start the conversion
        log.warning("could not cache the LiteRT conversion in %s (%s)", cache.parent, exc)
    return content


class LiteNetwork:
    """A Keras model behind a LiteRT interpreter: float32 (n, 48, 48, 1) -> (n, classes) numpy.

    ``cache_key`` (see :func:`cache_key`): keep the conversion on disk under that name.
    """

    def __init__(self, model, threads: int = THREADS, cache_key: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.name = model.name
        try:
            self._interpreter = Interpreter(model_content=_cached_litert(model, cache_key),
                                            num_threads=threads)
        except ValueError:  # a damaged cache file: convert again, and replace it
            if cache_key is None:
                raise
            from ..settings import get_settings
            (get_settings().data_dir / "litert-cache" / f"{cache_key}.tflite").unlink(missing_ok=True)
            self._interpreter = Interpreter(model_content=_cached_litert(model, cache_key),
                                            num_threads=threads)
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


def compile_network(model, cache_key: str | None = None):
    """The fastest runnable form of ``model``: a :class:`LiteNetwork`, or a ``tf.function``.

    The ``tf.function`` (one traced graph for any batch size) is the fallback when the
    conversion or the interpreter fails; ``EMOTION_RUNTIME=tensorflow`` asks for it.
    Both return numpy arrays.
    """
    from ..settings import get_settings
    if get_settings().emotion_runtime == "litert":
        try:
            return LiteNetwork(model, cache_key=cache_key)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the TensorFlow path working
            log.warning("LiteRT conversion of %s failed (%s: %s); running it with TensorFlow",
                        model.name, type(exc).__name__, exc)
    import tensorflow as tf

    from .dataset import IMAGE_SIZE
    spec = [tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32)]
    graph = tf.function(lambda x: model(x, training=False), reduce_retracing=True, input_signature=spec)
    return lambda x: graph(x).numpy()


def runtime_of(forward) -> str:
    """'litert' or 'tensorflow': how a compiled network runs."""
    return "litert" if isinstance(forward, LiteNetwork) else "tensorflow"

