"""Value objects of the face vocabulary: detection, aligned face, embedding, quality report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Landmark order everywhere: right eye, left eye (as seen in the image: left, then right),
#: nose tip, right mouth corner, left mouth corner — YuNet's order, which is also ArcFace's.
LANDMARK_NAMES = (
    "eye_left_in_image",
    "eye_right_in_image",
    "nose",
    "mouth_left_in_image",
    "mouth_right_in_image",
)


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """A face found in an image: box (x, y, w, h) in pixels, 5 landmarks (5x2), score in [0, 1]."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """The face's shorter box side in pixels."""
        return float(min(self.box[2], self.box[3]))

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@dataclass(frozen=True, slots=True, eq=False)
class Embedding:
    """An L2-normalised float32 vector and the id of the model that made it."""

    vector: np.ndarray
    model_id: str


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One reason a face is not good enough, with a message a person can act on."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Result of the registration quality gate: ``ok`` when there are no issues."""

    issues: tuple[QualityIssue, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(issue.code for issue in self.issues)
