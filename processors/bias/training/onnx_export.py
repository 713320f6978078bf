"""Convert fitted scikit-learn parts with skl2onnx and join them into one ONNX graph."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import ClassifierMixin

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PRODUCER = "fairstream-bias-training"


def convert_head(model: ClassifierMixin, n_features: int, input_name: str) -> onnx.ModelProto:
    """Convert a classifier to ONNX taking a float matrix, emitting label and probabilities."""
    converted = convert_sklearn(
        model,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    assert isinstance(converted, onnx.ModelProto)
    return converted


def _prefixed(model: onnx.ModelProto, prefix: str, keep: set[str]) -> onnx.GraphProto:
    """Return the model's graph with every name prefixed except those in keep."""
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)

    def rename(name: str) -> str:
        return name if not name or name in keep else prefix + name

    for node in graph.node:
        node.name = prefix + node.name
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for init in graph.initializer:
        init.name = rename(init.name)
    for value in list(graph.output) + list(graph.value_info):
        value.name = rename(value.name)
    return graph


def compose(
    base: onnx.ModelProto,
    base_output: str,
    feature_name: str,
    heads: Mapping[str, onnx.ModelProto],
    outputs: Sequence[tuple[str, int, list[Any]]],
    extra_nodes: Sequence[onnx.NodeProto] = (),
    extra_initializers: Sequence[onnx.TensorProto] = (),
    metadata: Mapping[str, Any] | None = None,
    graph_name: str = "fairstream_bias",
) -> onnx.ModelProto:
    """Join a feature graph and head graphs (each reading `feature_name`) into one model.

    `outputs` lists (name, element type, shape) of the values the model exposes.
    """
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    for node in base.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.output[:] = [feature_name if o == base_output else o for o in copy.output]
        copy.input[:] = [feature_name if i == base_output else i for i in copy.input]
        nodes.append(copy)
    initializers.extend(base.graph.initializer)
    opsets: dict[str, int] = {o.domain: o.version for o in base.opset_import}
    for prefix, head in heads.items():
        graph = _prefixed(head, prefix, keep={feature_name})
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        for o in head.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    nodes.extend(extra_nodes)
    initializers.extend(extra_initializers)
    graph = helper.make_graph(
        nodes,
        graph_name,
        inputs=list(base.graph.input),
        outputs=[helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name=PRODUCER,
    )
    model.ir_version = base.ir_version
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.checker.check_model(model)
    return model


def float_initializer(name: str, values: np.ndarray[Any, Any]) -> onnx.TensorProto:
    """Return a float32 initializer holding the values."""
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name=name)


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
STRING = TensorProto.STRING


def save_model(model: onnx.ModelProto, path: Any) -> None:
    """Write the model deterministically (same model, same bytes)."""
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString(deterministic=True))
