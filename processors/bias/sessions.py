"""Open onnxruntime sessions tuned for a small (2-core) machine."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

DEFAULT_MAX_THREADS = 2


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Return options: all graph optimisations, sequential execution, at most 2 intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    threads = intra_op_threads or min(DEFAULT_MAX_THREADS, os.cpu_count() or 1)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads burn the second core between micro-batches; the processor is bursty.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def open_session(path: Path | bytes, intra_op_threads: int | None = None) -> ort.InferenceSession:
    """Open one CPU inference session on a model file (or serialized bytes)."""
    source = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(
        source,
        sess_options=session_options(intra_op_threads),
        providers=["CPUExecutionProvider"],
    )
