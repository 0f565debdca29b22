"""The benchmark's metrics on hand-made scores, so that the numbers in README mean what they say."""

from __future__ import annotations

import numpy as np
import pytest

from eventface.bench.dataset import LabelledImage
from eventface.bench.metrics import Vectors, pair_scores, rank1, score_matrices, summarise, tar_at_far


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(
    ("far", "expected"),
    [(0.1, 0.75), (0.01, 0.5), (0.0, 0.25)],
)
def test_tar_at_far_threshold_lets_through_at_most_far_impostors(far: float, expected: float) -> None:
    # given 100 impostor scores 0.00..0.99 and four genuine scores
    impostor = np.arange(100) / 100.0
    genuine = np.array([0.5, 0.95, 0.985, 1.2])
    # when
    tar = tar_at_far(genuine, impostor, far)
    # then: at FAR 0.1 the threshold is 0.89 (10 impostors above), at 0.01 it is 0.98, at 0 it is 0.99
    assert tar == expected


def test_pair_scores_skip_group_photos_and_split_genuine_from_impostor() -> None:
    # given three labelled images, one a group photo
    labels = [
        LabelledImage("a", "x", False),
        LabelledImage("b", "x", False),
        LabelledImage("g", "group", False),
    ]
    pair = np.array([[1.0, 0.8, 0.9], [0.8, 1.0, 0.7], [0.9, 0.7, 1.0]])
    # when
    genuine, impostor = pair_scores(labels, pair)
    # then
    assert genuine.tolist() == [0.8]
    assert impostor.size == 0


def test_rank1_uses_first_unmasked_image_as_gallery_and_counts_missing_faces_as_errors() -> None:
    # given identities x (3 images, the first masked) and y (2 images)
    labels = [
        LabelledImage("x0", "x", True),
        LabelledImage("x1", "x", False),
        LabelledImage("x2", "x", False),
        LabelledImage("y0", "y", False),
        LabelledImage("y1", "y", False),
    ]
    vectors = np.stack([_unit(1, 0.1), _unit(1, 0), _unit(1, 0.2), _unit(0, 1), _unit(0.1, 1)])
    found = np.array([True, True, True, True, False])
    v = Vectors(found, vectors, vectors, None, np.zeros(5, dtype=bool))
    _, probe_vs_template = score_matrices(v)
    # when
    overall = rank1(labels, probe_vs_template)
    masked = rank1(labels, probe_vs_template, masked_only=True)
    # then: x0 and x2 find x1; y1 has no face and counts as a miss
    assert overall == pytest.approx(2 / 3)
    assert masked == 1.0


def test_score_matrices_masked_probe_uses_mean_of_plain_and_masked_template() -> None:
    # given a masked probe and a template whose masked version is closer to it
    probe = np.stack([_unit(1, 0), _unit(0, 1)])
    template = np.stack([_unit(1, 0), _unit(0, 1)])
    masked_template = np.stack([_unit(1, 0), _unit(1, 1)])
    v = Vectors(np.ones(2, bool), probe, template, masked_template, np.array([True, False]))
    # when
    pair, probe_vs_template = score_matrices(v)
    # then
    assert probe_vs_template[0, 1] == pytest.approx(0.5 * (0.0 + np.sqrt(0.5)))
    assert probe_vs_template[1, 0] == pytest.approx(0.0)
    assert pair[0, 1] == pytest.approx(pair[1, 0])


def test_summarise_reports_every_key_of_the_benchmark() -> None:
    # given two identities with two images each
    labels = [LabelledImage(f"{k}{i}", k, False) for k in "ab" for i in range(2)]
    vectors = np.stack([_unit(1, 0), _unit(1, 0.1), _unit(0, 1), _unit(0.1, 1)])
    v = Vectors(np.ones(4, bool), vectors, vectors, None, np.zeros(4, bool))
    # when
    result = summarise(labels, v)
    # then
    for key in ("images", "no_face", "tar_at_far_1e-2", "tar_at_far_1e-3", "tar_at_far_1e-4", "rank1"):
        assert key in result
    assert result["rank1"] == 1.0
    assert result["tar_at_far_1e-3"] == 1.0
