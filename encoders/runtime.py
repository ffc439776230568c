"""Where an encoder's forward pass runs: torch, ONNX Runtime or OpenVINO, on a fixed thread budget.

An encoder built with `runtime="onnx"` or `"openvino"` exports its network once to an ONNX
file in the per-user cache (`cache_dir()`), then runs that file instead of the torch module.
The file name is a hash of the weights and of every export setting (pooling, input size,
opset, torch version), so a changed setting never reuses a stale file. A file is written to a
temporary name and published with `os.replace`, and its SHA-256 is kept beside it: a file
whose checksum does not match (truncated, edited, half-written by a crash) is exported again,
never trusted.

`"auto"` picks the runtime measured fastest at equal quality for the modality on this
machine (`AUTO_RUNTIME`, see docs/evaluation.md "Encoder runtimes") and degrades to torch
with a logged warning when its package is missing or the export fails; an explicitly named
runtime raises instead, so a run meant for ONNX never silently runs torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InvalidArgumentError

from .config import RUNTIMES

log = logging.getLogger(__name__)
CACHE_ENV = "SHOPVEC_CACHE_DIR"
EXPORT_FORMAT = 1  # bump when the exported graphs change meaning
OPSET = 17
# The winner per modality, measured by benchmarks/bench_encoders.py (docs/evaluation.md): OpenVINO
# for both where the CPU computes in bfloat16 (OpenVINO's default there; it beat ONNX Runtime's int8
# MiniLM too); elsewhere ONNX Runtime.
AUTO_RUNTIME = {"image": "openvino", "text": "openvino"}
AUTO_FALLBACK = {"openvino": "onnx"}
PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino"}


def cache_dir() -> Path:
    """The folder exported models are cached in: `$SHOPVEC_CACHE_DIR`, else `~/.cache/shopvec`.

    Example:
        >>> cache_dir().name in ("shopvec", os.path.basename(os.environ.get(CACHE_ENV, "")))
        True
    """
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "shopvec"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask), at least 1.

    Example:
        >>> available_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """The thread budget: `threads`, or all the cores this process may use when None.

    Example:
        >>> resolve_threads(3)
        3
    """
    if threads is None:
        return available_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"threads must be None or a positive integer, got {threads!r}")
    return threads


# The most image-decoding processes a pool sized from the cores gets: each holds a copy of the
# preprocessing and prefetches batches, and past this many the model, not decoding, is the bottleneck.
MAX_DECODE_WORKERS = 8


def decode_workers(threads: int | None, num_workers: int | None = None) -> int:
    """How many image-decoding processes run beside the model: `num_workers`, or sized from the cores when None.

    Sized from the cores, the pool gets half the threads that can run at once,
    `min(budget, available_cores()) // 2` (budget: `threads`, or the usable cores when None), at
    most `MAX_DECODE_WORKERS`: decoding and resizing one product photo costs the same order as
    one forward pass of the default image model on the default runtime (the pipeline with one
    worker ran at about 110 images/s, the forward pass alone at 200: docs/evaluation.md
    "Encoder runtimes"), so halves keep both busy. A
    given `num_workers` is taken as asked. Either way the pool is at most budget - 1, leaving a
    thread for the model, so a budget of one thread decodes in the main process.

    Raises:
        InvalidArgumentError: `threads` is not None or a positive integer, or `num_workers` is not
            None or an integer >= 0.

    Example:
        >>> decode_workers(4, 1), decode_workers(1), decode_workers(1, 3)
        (1, 0, 0)
        >>> decode_workers(4) == min(4, available_cores()) // 2
        True
    """
    budget = resolve_threads(threads)
    if num_workers is None:
        wanted = min(MAX_DECODE_WORKERS, min(budget, available_cores()) // 2)
    elif isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise InvalidArgumentError(f"num_workers must be None (sized from the cores) or an integer >= 0, got {num_workers!r}")
    else:
        wanted = num_workers
    return max(0, min(wanted, budget - 1))


def split_budget(threads: int | None, num_workers: int | None = None) -> tuple[int, int]:
    """(forward-pass threads, image-decoding processes) that together stay within the budget.

    Decoding workers come out of the budget first (`decode_workers`: `num_workers`, or half the
    usable cores when None, leaving at least one thread for the model); the model gets the rest.
    More runnable threads than cores makes the forward pass wait on descheduled threads, which
    is the collapse under load that docs/evaluation.md ("Encoder runtimes") measures.

    Example:
        >>> split_budget(2, 1)
        (1, 1)
        >>> split_budget(1)
        (1, 0)
    """
    budget = resolve_threads(threads)
    workers = decode_workers(budget, num_workers)
    return max(1, budget - workers), workers


def keep_sigchld_default() -> None:
    """Stop torch's DataLoader from installing its SIGCHLD handler in this process (call before starting workers).

    The first DataLoader with worker processes installs a Python-level SIGCHLD handler, for the rest
    of the process's life, to report a dead worker at once. With any Python-level SIGCHLD handler
    installed, a process that had run the OpenVINO image encoder died with a segmentation fault
    (exit 139, in unrelated code: pyarrow) soon after a child process of its own stopped,
    continued or ended (`tests/test_encoder_sigchld.py`; docs/evaluation.md "Encoder runtimes");
    with SIGCHLD left at its default (ignored: the signal is never delivered) it did not.
    Without the handler a worker that dies is still reported, by the DataLoader's own check when
    its `timeout` expires (every 5 s without one). Called where a runtime loads (`CompiledGraph`)
    and before the pipeline starts decode workers; in the main thread, a handler torch installed
    earlier is removed too (the one it replaced, if any, is put back).

    Example:
        >>> keep_sigchld_default()
        >>> import torch.utils.data._utils.signal_handling as s; s._SIGCHLD_handler_set
        True
    """
    from torch.utils.data._utils import signal_handling

    # torch installs its handler only while this flag is False (torch/utils/data/_utils/signal_handling.py).
    signal_handling._SIGCHLD_handler_set = True
    current = signal.getsignal(signal.SIGCHLD)
    if getattr(current, "__module__", None) == signal_handling.__name__ and threading.current_thread() is threading.main_thread():
        cells = dict(zip(current.__code__.co_freevars, current.__closure__ or ()))
        previous = cells["previous_handler"].cell_contents if "previous_handler" in cells else None
        signal.signal(signal.SIGCHLD, previous if callable(previous) else signal.SIG_DFL)


def resolve_runtime(runtime: str, modality: str, device: torch.device) -> str:
    """The runtime an encoder of `modality` on `device` uses for `runtime` ("auto" = measured winner).

    Raises:
        InvalidArgumentError: an unknown name, or an explicit "onnx"/"openvino" whose package is
            not installed or on a non-CPU device.

    Example:
        >>> resolve_runtime("torch", "text", torch.device("cpu"))
        'torch'
    """
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "auto":
        chosen = AUTO_RUNTIME.get(modality, "torch")
        if device.type != "cpu":
            return "torch"
        if chosen == "openvino" and not openvino_bf16():
            chosen = AUTO_FALLBACK[chosen]
        if chosen != "torch" and not runtime_installed(chosen):
            log.warning("runtime %r for %s encoders needs the package %r, which is not installed; using torch",
                        chosen, modality, PACKAGES[chosen])
            return "torch"
        return chosen
    if runtime != "torch":
        if device.type != "cpu":
            raise InvalidArgumentError(f"runtime {runtime!r} runs on the CPU only; got device {str(device)!r} "
                                       "(use runtime='torch' or 'auto' on a GPU)")
        if not runtime_installed(runtime):
            raise InvalidArgumentError(f"runtime {runtime!r} needs the package {PACKAGES[runtime]!r}, which is not "
                                       "installed; install it or use runtime='torch'")
    return runtime


@functools.cache
def openvino_bf16() -> bool:
    """Whether OpenVINO is installed and computes in bfloat16 on this CPU (where it beat ONNX Runtime)."""
    if not runtime_installed("openvino"):
        return False
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # an OpenVINO that cannot query the CPU is not the measured winner
        return False


def runtime_installed(runtime: str) -> bool:
    """Whether the package behind `runtime` can be imported."""
    return runtime == "torch" or importlib.util.find_spec(PACKAGES[runtime]) is not None


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and bytes), the cache key of its export.

    Example:
        >>> len(weights_digest(torch.nn.Linear(2, 2)))
        64
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_export(name: str, module: torch.nn.Module, settings: Mapping[str, Any], export: Callable[[Path], None]) -> Path:
    """The ONNX file of `module` under `settings` in `cache_dir()`, exported by `export(path)` when absent or corrupt.

    Args:
        name: readable prefix of the file name, e.g. "efficientnet-lite0".
        module: the network (its weights are part of the key).
        settings: everything else the exported graph depends on (JSON-serialisable).
        export: writes the ONNX file to the path it is given.

    Example:
        >>> path = cached_export("lin", torch.nn.Linear(2, 2), {}, lambda p: ...)  # doctest: +SKIP
    """
    key_source = {"weights": weights_digest(module), "settings": dict(settings), "torch": torch.__version__,
                  "opset": OPSET, "format": EXPORT_FORMAT}
    key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:32]
    folder = cache_dir()
    path = folder / f"{name}-{key}.onnx"
    checksum = path.with_name(path.name + ".sha256")
    if path.is_file() and checksum.is_file():
        if checksum.read_text().strip() == file_digest(path):
            return path
        log.warning("cached model '%s' does not match its checksum; exporting it again", path)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        export(tmp)
        digest = file_digest(tmp)
        os.replace(tmp, path)
        _write_atomic(checksum, digest + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and `os.replace`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], output: str,
                dynamic: Mapping[str, Mapping[int, str]], path: Path) -> None:
    """Export `module` called on `args` to an ONNX file at `path` (TorchScript exporter, fixed opset).

    Example:
        >>> export_onnx(net, (x,), ["pixels"], "features", {"pixels": {0: "n"}}, Path("net.onnx"))  # doctest: +SKIP
    """
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=[output],
                          dynamic_axes={k: dict(v) for k, v in dynamic.items()}, opset_version=OPSET, dynamo=False)


class CompiledGraph:
    """An ONNX file loaded in ONNX Runtime or OpenVINO with a fixed number of threads.

    Args:
        path: the ONNX file.
        runtime: "onnx" or "openvino".
        threads: intra-op threads (ORT `intra_op_num_threads`, OpenVINO `INFERENCE_NUM_THREADS`).

    Example:
        >>> graph = CompiledGraph(Path("model.onnx"), "onnx", threads=2)  # doctest: +SKIP
        >>> graph.run({"pixels": x}).shape                               # doctest: +SKIP
        (4, 1280)
    """

    def __init__(self, path: Path, runtime: str, threads: int) -> None:
        self.path, self.runtime, self.threads = Path(path), runtime, resolve_threads(threads)
        keep_sigchld_default()  # with a runtime loaded, a Python SIGCHLD handler crashed the process (exit 139)
        self._lock = threading.Lock()  # an OpenVINO compiled model's implicit request is not thread-safe
        if runtime == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # Spinning workers burn the cores a competing process (or a decode worker) needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in self._session.get_inputs()]
        elif runtime == "openvino":
            import openvino as ov

            compiled = ov.Core().compile_model(
                str(self.path), "CPU", {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY",
                                        "NUM_STREAMS": 1})
            self._compiled = compiled
            self.inputs = [port.get_any_name() for port in compiled.inputs]
        else:
            raise InvalidArgumentError(f"CompiledGraph runs 'onnx' or 'openvino', got {runtime!r}")

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph's first output for `feeds` (input name -> array), as float32."""
        given = {name: feeds[name] for name in self.inputs}
        if self.runtime == "onnx":
            out = self._session.run(None, given)[0]
        else:
            with self._lock:
                out = self._compiled(given)[0]
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"CompiledGraph({self.runtime!r}, {self.path.name!r}, threads={self.threads})"


def compile_encoder(runtime: str, modality: str, device: torch.device, threads: int,
                    build: Callable[[str], Path]) -> tuple[str, CompiledGraph | None]:
    """(runtime used, graph or None for torch): resolve `runtime` and load the file `build(runtime)` returns.

    Under "auto" a failing export or load logs a warning and falls back to torch; an explicitly
    named runtime raises.

    Example:
        >>> compile_encoder("torch", "image", torch.device("cpu"), 2, build)  # doctest: +SKIP
        ('torch', None)
    """
    chosen = resolve_runtime(runtime, modality, device)
    if chosen == "torch":
        return "torch", None
    try:
        return chosen, CompiledGraph(build(chosen), chosen, threads)
    except Exception as exc:  # export or load failures of any kind mean the same here
        if runtime != "auto":
            raise InvalidArgumentError(f"cannot run the {modality} encoder with runtime {runtime!r}: {exc}") from exc
        log.warning("cannot run the %s encoder with runtime %r (%s); using torch", modality, chosen, exc)
        return "torch", None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to `threads` (None: leave it), then restore it.

    Example:
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
    """
    before = torch.get_num_threads()
    change = threads is not None and threads != before
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


def export_image_graph(name: str, module: torch.nn.Module, size: int, settings: Mapping[str, Any]) -> Path:
    """The cached ONNX export of an image network taking `(n, 3, size, size)` "pixels" to `(n, dim)` "features".

    Example:
        >>> export_image_graph("efficientnet-lite0", encoder.model, 224, {"pooling": "max"})  # doctest: +SKIP
    """
    example = torch.zeros(2, 3, size, size)
    dynamic = {"pixels": {0: "n"}, "features": {0: "n"}}
    return cached_export(name, module, {**settings, "size": size},
                         lambda path: export_onnx(module, (example,), ["pixels"], "features", dynamic, path))
