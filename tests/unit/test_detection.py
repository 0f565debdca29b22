"""YuNet pre- and post-processing on synthetic arrays: letterbox, output decoding, NMS, main face."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from face_engine.detection import (
    ALIGN,
    STRIDES,
    Letterbox,
    MainFacePolicy,
    YuNetDetector,
    decode_outputs,
    letterbox,
    non_max_suppression,
    pick_main_face,
)
from face_engine.errors import MultipleFacesError, NoFaceDetectedError
from face_engine.types import Detection

Outputs = dict[str, np.ndarray]


def spots_image(width: int, height: int, points: np.ndarray, sigma: float) -> np.ndarray:
    """A BGR image with a Gaussian spot centred on each point (continuous coordinates: the centre
    of pixel (i, j) is (i + 0.5, j + 0.5), the convention cv2.resize keeps)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    spots = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2.0 * sigma**2)) for x, y in points)
    grey = np.clip(np.rint(250.0 * np.asarray(spots)), 0, 255).astype(np.uint8)
    return np.dstack([grey, grey, grey])


def spot_centre(channel: np.ndarray, near: tuple[float, float], radius: int) -> tuple[float, float]:
    """Intensity-weighted centroid (continuous coordinates) of the spot near ``near``."""
    x0, y0 = int(near[0]), int(near[1])
    rows = slice(max(0, y0 - radius), y0 + radius + 1)
    cols = slice(max(0, x0 - radius), x0 + radius + 1)
    window = channel[rows, cols].astype(np.float64)
    yy, xx = np.mgrid[rows, cols] + 0.5
    return float((window * xx).sum() / window.sum()), float((window * yy).sum() / window.sum())


@pytest.fixture
def empty_outputs() -> Callable[[int, int], Outputs]:
    """Factory: YuNet outputs for a ``width`` x ``height`` input with every score zero."""

    def make(width: int, height: int) -> Outputs:
        outputs: Outputs = {}
        for stride in STRIDES:
            anchors = (width // stride) * (height // stride)
            outputs[f"cls_{stride}"] = np.zeros((1, anchors, 1), np.float32)
            outputs[f"obj_{stride}"] = np.zeros((1, anchors, 1), np.float32)
            outputs[f"bbox_{stride}"] = np.zeros((1, anchors, 4), np.float32)
            outputs[f"kps_{stride}"] = np.zeros((1, anchors, 10), np.float32)
        return outputs

    return make


@dataclass(frozen=True)
class Anchor:
    """One hand-made prediction: stride, cell and the raw values YuNet would output for it."""

    stride: int
    row: int
    col: int
    cls: float
    obj: float
    bbox: tuple[float, float, float, float]
    kps: tuple[float, ...]

    def write(self, outputs: Outputs, width: int) -> None:
        index = self.row * (width // self.stride) + self.col
        outputs[f"cls_{self.stride}"][0, index, 0] = self.cls
        outputs[f"obj_{self.stride}"][0, index, 0] = self.obj
        outputs[f"bbox_{self.stride}"][0, index] = self.bbox
        outputs[f"kps_{self.stride}"][0, index] = self.kps


KPS = (0.1, -0.2, 0.9, -0.25, 0.5, 0.3, 0.2, 0.8, 0.8, 0.75)


@pytest.fixture
def make_detection() -> Callable[..., Detection]:
    """Factory: a square face of side ``size`` centred at ``center``."""

    def make(size: float, center: tuple[float, float], score: float = 0.9) -> Detection:
        cx, cy = center
        landmarks = np.tile(np.array(center, dtype=np.float32), (5, 1))
        return Detection(box=(cx - size / 2, cy - size / 2, size, size), landmarks=landmarks, score=score)

    return make


# --- letterbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "max_side", "min_side"),
    [
        (640, 480, 640, 0),
        (1280, 720, 640, 0),
        (333, 517, 640, 0),
        (333, 517, 320, 0),
        (161, 97, 640, 0),
        (161, 97, 640, 320),
        (2000, 1500, 640, 0),
    ],
)
def test_letterbox_round_trip_maps_points_back_within_half_a_pixel(width, height, max_side, min_side):
    # given: three spots, each 1/60 of the image wide
    points = np.array(
        [[0.2 * width, 0.25 * height], [0.8 * width, 0.3 * height], [0.5 * width, 0.75 * height]]
    )
    sigma = max(width, height) / 60.0
    image = spots_image(width, height, points, sigma)

    # when: find each spot in the detector input and map it back to the image
    blob, geometry = letterbox(image, max_side, min_side)
    radius = int(4.0 * sigma * geometry.scale) + 2
    found = [spot_centre(blob[0, 0], (x * geometry.scale, y * geometry.scale), radius) for x, y in points]
    back = geometry.to_image(np.asarray(found))

    # then
    np.testing.assert_allclose(back, points, atol=0.5)


@pytest.mark.parametrize(
    ("width", "height", "content", "padded"),
    [
        (640, 480, (640, 480), (640, 480)),
        (1280, 720, (640, 360), (640, 384)),
        (333, 517, (333, 517), (352, 544)),
        (161, 97, (161, 97), (192, 128)),
    ],
)
def test_letterbox_pads_right_and_bottom_to_multiples_of_32(width, height, content, padded):
    # given: an all-white photo, so the content is the non-zero part of the input
    image = np.full((height, width, 3), 255, dtype=np.uint8)

    # when
    blob, geometry = letterbox(image, max_side=640)

    # then
    content_w, content_h = content
    padded_w, padded_h = padded
    assert blob.shape == (1, 3, padded_h, padded_w)
    assert blob.dtype == np.float32
    assert (geometry.width, geometry.height) == (padded_w, padded_h)
    assert geometry.width % ALIGN == 0 and geometry.height % ALIGN == 0
    assert (blob[0, :, :content_h, :content_w] == 255.0).all()
    assert not blob[0, :, content_h:, :].any()
    assert not blob[0, :, :, content_w:].any()


def test_letterbox_keeps_bgr_channel_order_as_nchw():
    # given: a photo whose blue, green and red planes differ
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30

    # when
    blob, _ = letterbox(image, max_side=640)

    # then
    assert blob[0, :, 5, 5].tolist() == [10.0, 20.0, 30.0]


@pytest.mark.parametrize(
    ("width", "height", "min_side", "content"),
    [(161, 97, 320, (320, 193)), (97, 161, 320, (193, 320)), (200, 100, 160, (200, 100))],
)
def test_letterbox_enlarges_small_photos_to_min_side(width, height, min_side, content):
    # given
    image = np.full((height, width, 3), 200, dtype=np.uint8)

    # when
    blob, geometry = letterbox(image, max_side=640, min_side=min_side)

    # then: the content grew to min_side on its longer side (or kept its size when already larger)
    rows = np.flatnonzero(blob[0, 0].any(axis=1))
    cols = np.flatnonzero(blob[0, 0].any(axis=0))
    assert (cols.size, rows.size) == content
    expected_scale = (content[0] / width + content[1] / height) / 2.0
    assert geometry.scale == pytest.approx(expected_scale)


def test_letterbox_to_image_divides_by_the_scale():
    # given
    geometry = Letterbox(scale=0.5, width=640, height=384)

    # when
    points = geometry.to_image(np.array([[10.0, 20.0], [320.0, 180.0]]))

    # then
    np.testing.assert_allclose(points, [[20.0, 40.0], [640.0, 360.0]])


# --- decode_outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        Anchor(8, 3, 5, cls=0.81, obj=0.64, bbox=(0.25, -0.5, math.log(2.0), math.log(3.0)), kps=KPS),
        Anchor(16, 2, 1, cls=0.9, obj=0.9, bbox=(0.0, 0.0, 0.0, 0.0), kps=KPS),
        Anchor(32, 1, 2, cls=1.0, obj=0.49, bbox=(-0.5, 0.5, math.log(1.5), math.log(0.5)), kps=KPS),
    ],
    ids=["stride-8", "stride-16", "stride-32"],
)
def test_decode_outputs_turns_one_anchor_into_box_landmarks_and_score(empty_outputs, anchor):
    # given: a 128x96 input in which only this anchor scores
    outputs = empty_outputs(128, 96)
    anchor.write(outputs, 128)

    # when
    boxes, marks, scores = decode_outputs(outputs, 128, score_threshold=0.5)

    # then: centre = (cell + offset) * stride, size = exp(log-size) * stride, box is (x, y, w, h)
    s = anchor.stride
    cx, cy = (anchor.col + anchor.bbox[0]) * s, (anchor.row + anchor.bbox[1]) * s
    w, h = math.exp(anchor.bbox[2]) * s, math.exp(anchor.bbox[3]) * s
    np.testing.assert_allclose(boxes, [[cx - w / 2, cy - h / 2, w, h]], rtol=1e-6, atol=1e-4)
    expected_marks = (np.asarray(KPS).reshape(5, 2) + np.array([anchor.col, anchor.row])) * s
    np.testing.assert_allclose(marks, [expected_marks], atol=1e-4)
    np.testing.assert_allclose(scores, [math.sqrt(anchor.cls * anchor.obj)], rtol=1e-6)
    assert boxes.dtype == marks.dtype == scores.dtype == np.float32


def test_decode_outputs_gives_the_worked_example(empty_outputs):
    # given: stride 16, row 2, column 3 of a 64-wide input; cls 0.81 and obj 0.64
    outputs = empty_outputs(64, 64)
    Anchor(16, 2, 3, cls=0.81, obj=0.64, bbox=(0.25, -0.5, math.log(2.0), math.log(3.0)), kps=KPS).write(
        outputs, 64
    )

    # when
    boxes, marks, scores = decode_outputs(outputs, 64, score_threshold=0.5)

    # then: centre ((3 + 0.25) * 16, (2 - 0.5) * 16) = (52, 24), size (32, 48), score sqrt(0.5184)
    np.testing.assert_allclose(boxes, [[36.0, 0.0, 32.0, 48.0]], atol=1e-4)
    np.testing.assert_allclose(marks[0, 0], [(3 + 0.1) * 16, (2 - 0.2) * 16], atol=1e-4)
    np.testing.assert_allclose(scores, [0.72], rtol=1e-6)


def test_decode_outputs_drops_anchors_under_the_score_threshold(empty_outputs):
    # given: one anchor just over and one just under 0.6 (sqrt(0.37) = 0.608, sqrt(0.35) = 0.592)
    outputs = empty_outputs(64, 64)
    Anchor(8, 0, 0, cls=0.37, obj=1.0, bbox=(0.5, 0.5, 0.0, 0.0), kps=KPS).write(outputs, 64)
    Anchor(8, 4, 4, cls=0.35, obj=1.0, bbox=(0.5, 0.5, 0.0, 0.0), kps=KPS).write(outputs, 64)

    # when
    boxes, _, scores = decode_outputs(outputs, 64, score_threshold=0.6)

    # then
    assert len(boxes) == 1
    np.testing.assert_allclose(boxes[0, :2], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(scores, [math.sqrt(0.37)], rtol=1e-6)


def test_decode_outputs_clips_scores_into_zero_one(empty_outputs):
    # given: raw values slightly outside [0, 1], as a float model may produce
    outputs = empty_outputs(32, 32)
    Anchor(32, 0, 0, cls=1.02, obj=1.5, bbox=(0.5, 0.5, 0.0, 0.0), kps=KPS).write(outputs, 32)

    # when
    _, _, scores = decode_outputs(outputs, 32, score_threshold=0.5)

    # then
    np.testing.assert_allclose(scores, [1.0])


def test_decode_outputs_without_faces_returns_empty_arrays(empty_outputs):
    # given
    outputs = empty_outputs(64, 64)

    # when
    boxes, marks, scores = decode_outputs(outputs, 64, score_threshold=0.6)

    # then
    assert boxes.shape == (0, 4)
    assert marks.shape == (0, 5, 2)
    assert scores.shape == (0,)


# --- non_max_suppression -----------------------------------------------------------------------


def test_non_max_suppression_keeps_the_best_of_overlapping_boxes_and_disjoint_ones():
    # given: boxes 0 and 1 overlap (IoU 0.68), box 2 is elsewhere
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], dtype=np.float32)
    scores = np.array([0.90, 0.95, 0.50], dtype=np.float32)

    # when
    kept = non_max_suppression(boxes, scores, iou_threshold=0.3, top_k=10)

    # then: best score first
    assert kept.tolist() == [1, 2]


@pytest.mark.parametrize(("iou_threshold", "expected"), [(0.3, [0]), (0.5, [0, 1])])
def test_non_max_suppression_suppresses_only_above_the_iou_threshold(iou_threshold, expected):
    # given: two boxes with IoU 1/3 (10x10 boxes shifted by 5 px)
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)

    # when
    kept = non_max_suppression(boxes, scores, iou_threshold=iou_threshold, top_k=10)

    # then
    assert kept.tolist() == expected


def test_non_max_suppression_stops_at_top_k():
    # given: four disjoint boxes
    boxes = np.array([[i * 20, 0, 10, 10] for i in range(4)], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.8], dtype=np.float32)

    # when
    kept = non_max_suppression(boxes, scores, iou_threshold=0.3, top_k=2)

    # then
    assert kept.tolist() == [1, 3]


def test_non_max_suppression_of_nothing_is_empty():
    # given
    boxes, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)

    # when
    kept = non_max_suppression(boxes, scores, iou_threshold=0.3, top_k=5)

    # then
    assert kept.shape == (0,)


# --- YuNetDetector (fake session) --------------------------------------------------------------


class FakeSession:
    """Stands in for an onnxruntime session: records the input and returns prepared outputs."""

    @dataclass(frozen=True)
    class Node:
        name: str

    def __init__(self, respond: Callable[[int, int], Outputs]) -> None:
        self._respond = respond
        self.names = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES]
        self.inputs: list[np.ndarray] = []

    def get_inputs(self) -> list[FakeSession.Node]:
        return [self.Node("input")]

    def get_outputs(self) -> list[FakeSession.Node]:
        return [self.Node(name) for name in self.names]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        blob = feeds["input"]
        self.inputs.append(blob)
        outputs = self._respond(blob.shape[3], blob.shape[2])
        return [outputs[name] for name in names]


def test_yunet_detector_maps_detections_back_to_the_photo(empty_outputs: Callable[[int, int], Outputs]):
    # given: a 1280x720 photo (run at 640x384, scale 0.5) and a model that sees one face and one
    # weaker duplicate of it
    def respond(width: int, height: int) -> Outputs:
        outputs = empty_outputs(width, height)
        Anchor(16, 10, 20, cls=0.9, obj=0.9, bbox=(0.5, 0.5, math.log(4.0), math.log(5.0)), kps=KPS).write(
            outputs, width
        )
        Anchor(16, 10, 21, cls=0.8, obj=0.8, bbox=(-0.5, 0.5, math.log(4.0), math.log(5.0)), kps=KPS).write(
            outputs, width
        )
        return outputs

    session = FakeSession(respond)
    detector = YuNetDetector(session, max_side=640, score_threshold=0.6, nms_threshold=0.3)
    photo = np.zeros((720, 1280, 3), dtype=np.uint8)

    # when
    found = detector.detect(photo)

    # then: one face; input-space box (296, 128, 64, 80) doubled
    assert session.inputs[0].shape == (1, 3, 384, 640)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box, (592.0, 256.0, 128.0, 160.0), atol=1e-3)
    expected_marks = (np.asarray(KPS).reshape(5, 2) + np.array([20, 10])) * 16 * 2
    np.testing.assert_allclose(found[0].landmarks, expected_marks, atol=1e-3)
    assert found[0].score == pytest.approx(0.9)


def test_yunet_detector_without_faces_returns_an_empty_list(empty_outputs):
    # given
    detector = YuNetDetector(FakeSession(empty_outputs))

    # when
    found = detector.detect(np.zeros((100, 100, 3), dtype=np.uint8))

    # then
    assert found == []


# --- pick_main_face ----------------------------------------------------------------------------

IMAGE_SHAPE = (480, 640, 3)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(MainFacePolicy.LARGEST, "corner"), (MainFacePolicy.CENTRAL, "centre")],
)
def test_pick_main_face_follows_the_policy(make_detection, policy, expected):
    # given: a large face in the corner and a somewhat smaller one in the middle
    faces = {
        "corner": make_detection(100.0, (60.0, 60.0)),
        "centre": make_detection(80.0, (320.0, 240.0)),
    }

    # when
    main = pick_main_face(list(faces.values()), IMAGE_SHAPE, policy)

    # then
    assert main is faces[expected]


def test_pick_main_face_largest_breaks_near_ties_by_closeness_to_the_centre(make_detection):
    # given: two faces of about the same size (97 vs 100 px)
    corner = make_detection(100.0, (80.0, 80.0))
    centre = make_detection(97.0, (330.0, 250.0))

    # when
    main = pick_main_face([corner, centre], IMAGE_SHAPE, MainFacePolicy.LARGEST)

    # then
    assert main is centre


def test_pick_main_face_central_still_prefers_a_much_larger_face(make_detection):
    # given: a tiny face right at the centre and a big one slightly off it
    tiny = make_detection(20.0, (320.0, 240.0))
    big = make_detection(200.0, (250.0, 200.0))

    # when
    main = pick_main_face([tiny, big], IMAGE_SHAPE, MainFacePolicy.CENTRAL)

    # then
    assert main is big


@pytest.mark.parametrize("ratio", [0.5, 0.8, 1.0])
def test_pick_main_face_single_refuses_a_second_face_of_comparable_size(make_detection, ratio):
    # given
    main = make_detection(150.0, (320.0, 240.0))
    other = make_detection(150.0 * ratio, (550.0, 240.0))

    # when / then
    with pytest.raises(
        MultipleFacesError, match="2 faces found: make sure only one person is in the picture"
    ):
        pick_main_face([other, main], IMAGE_SHAPE, MainFacePolicy.SINGLE)


@pytest.mark.parametrize("ratio", [0.2, 0.45])
def test_pick_main_face_single_ignores_small_faces_in_the_background(make_detection, ratio):
    # given
    main = make_detection(150.0, (320.0, 240.0))
    passer_by = make_detection(150.0 * ratio, (580.0, 100.0))

    # when
    picked = pick_main_face([passer_by, main], IMAGE_SHAPE, MainFacePolicy.SINGLE)

    # then
    assert picked is main


def test_pick_main_face_single_counts_every_comparable_face(make_detection):
    # given: the main face, two comparable ones and one passer-by
    faces = [
        make_detection(150.0, (320.0, 240.0)),
        make_detection(120.0, (100.0, 240.0)),
        make_detection(100.0, (540.0, 240.0)),
        make_detection(30.0, (600.0, 40.0)),
    ]

    # when / then
    with pytest.raises(MultipleFacesError, match="3 faces found"):
        pick_main_face(faces, IMAGE_SHAPE, MainFacePolicy.SINGLE)


@pytest.mark.parametrize("policy", list(MainFacePolicy))
def test_pick_main_face_without_detections_raises_an_instructive_error(policy):
    # given
    detections: list[Detection] = []

    # when / then
    with pytest.raises(NoFaceDetectedError, match="no face found in the image: make sure a face is visible"):
        pick_main_face(detections, IMAGE_SHAPE, policy)


@pytest.mark.parametrize("policy", list(MainFacePolicy))
def test_pick_main_face_of_one_face_returns_it(make_detection, policy):
    # given
    only = make_detection(60.0, (500.0, 400.0))

    # when
    main = pick_main_face([only], IMAGE_SHAPE, policy)

    # then
    assert main is only
