"""Is TensorRT usable here? Asked without ever crashing the process.

TF's private `get_loaded_tensorrt_version()` goes through the TensorRT stub, which
aborts the process (LogFatalSymbolNotFound) when libnvinfer cannot be loaded. So it is
only called after (1) the linked version (a compile-time constant, safe to read) shows
TF was built with TensorRT, (2) `is_tensorrt_enabled()` (which dlopens the TensorRT
libraries) says they load, and (3) libnvinfer.so.<major> loads with ctypes.

Verified without a GPU: tensorflow-cpu 2.17.1 (linked 0.0.0) and the GPU wheel
tensorflow 2.17.1 without TensorRT libraries installed (linked 8.6.1, not enabled).
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from typing import Any

from trtserve_converter.errors import TensorRTUnavailable

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorRTInfo:
    """What the probe found; `problem` is None when TF-TRT can run."""

    tensorflow_version: str
    linked: str | None = None
    loaded: str | None = None
    gpu: str | None = None
    problem: str | None = None

    def require(self) -> None:
        """Raise TensorRTUnavailable with the problem, if any."""
        if self.problem is not None:
            raise TensorRTUnavailable(self.problem)


def _version_text(version: Any) -> str:
    return ".".join(str(part) for part in version)


def _py_utils() -> Any | None:
    try:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils
    except ImportError:
        return None
    return _pywrap_py_utils


def gpu_name() -> str | None:
    """Name of the first visible GPU, None when there is none."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return str(details.get("device_name") or gpus[0].name)


def enable_memory_growth() -> None:
    """Let TF allocate GPU memory on demand instead of reserving it all at start.

    TensorRT's builder allocates outside TF's pool (tactics, workspace); with TF holding
    the whole GPU, engine builds fail with out-of-memory. Must run before the GPU is
    first used; later calls are ignored (logged).
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as error:
            LOG.warning("could not enable memory growth on %s: %s", gpu.name, error)


def probe_tensorrt() -> TensorRTInfo:
    """Check TF's TensorRT build flag, libnvinfer and the GPU, in that order."""
    import tensorflow as tf

    tf_version = str(tf.__version__)
    utils = _py_utils()
    # The linked version is a compile-time constant: (0, 0, 0) without TensorRT support.
    linked_tuple = tuple(utils.get_linked_tensorrt_version()) if utils is not None else ()
    if utils is None or not any(linked_tuple):
        return TensorRTInfo(
            tensorflow_version=tf_version,
            gpu=gpu_name(),
            problem=(
                f"TensorFlow {tf_version} here was built without TensorRT (e.g. tensorflow-cpu): "
                "run the GPU converter image (tensorflow 2.17.1 with TensorRT 8.6) or use "
                "precision NATIVE"
            ),
        )
    linked = _version_text(linked_tuple)
    library = f"libnvinfer.so.{linked_tuple[0]}"
    # is_tensorrt_enabled() dlopens the TensorRT libraries (false when they are missing);
    # the ctypes load double-checks the exact library the stub would abort on.
    problem = None
    if not utils.is_tensorrt_enabled():
        problem = "TensorFlow could not load the TensorRT libraries"
    else:
        try:
            ctypes.CDLL(library)
        except OSError as error:
            problem = f"{library} cannot be loaded ({error})"
    if problem is not None:
        return TensorRTInfo(
            tensorflow_version=tf_version,
            linked=linked,
            gpu=gpu_name(),
            problem=(
                f"TensorFlow {tf_version} is linked against TensorRT {linked} but {problem}: "
                f"install libnvinfer{linked_tuple[0]} and libnvinfer-plugin{linked_tuple[0]} "
                f"{linked} (the converter image has them) or fix LD_LIBRARY_PATH"
            ),
        )
    loaded = _version_text(utils.get_loaded_tensorrt_version())
    gpu = gpu_name()
    if gpu is None:
        problem = (
            "no GPU is visible to TensorFlow: request nvidia.com/gpu for the pod and check "
            "the NVIDIA device plugin and driver"
        )
    elif loaded.split(".")[0] != linked.split(".")[0]:
        problem = (
            f"TensorRT {loaded} is loaded but TensorFlow was linked against {linked}: "
            "install the same TensorRT major version"
        )
    LOG.info("TensorRT linked %s, loaded %s, GPU %s", linked, loaded, gpu)
    return TensorRTInfo(
        tensorflow_version=tf_version, linked=linked, loaded=loaded, gpu=gpu, problem=problem
    )
