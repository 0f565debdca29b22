"""Match thresholds: one table per model, each value with where it comes from.

Similarities are cosines of L2-normalised embeddings. A *match* is a similarity at or above the
threshold of the chosen false-accept rate (FAR) for the model that made both embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from face_engine.errors import ModelMismatchError


@dataclass(frozen=True, slots=True)
class Threshold:
    far: float
    similarity: float
    provenance: str


_DEV_SET = (
    "eventface bench accuracy on ../shared/data/faces (494 images, 102 identities, 116,571 impostor "
    "pairs, 171 masked photos), engine pipeline with refined landmarks and mask-aware templates; "
    "the 1e-4 value rests on the 12 highest impostor scores, so treat it as an estimate"
)

THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "sface-2021dec": (
        Threshold(1e-2, 0.301, _DEV_SET),
        Threshold(1e-3, 0.372, _DEV_SET),
        Threshold(1e-4, 0.427, _DEV_SET),
        Threshold(
            0.0,
            0.363,
            "OpenCV Zoo's published SFace cosine threshold (LFW 10-fold, 99.40 %); for reference",
        ),
    ),
}

#: The operating point used when a caller does not choose: one false accept in a thousand
#: impostor comparisons.
DEFAULT_FAR = 1e-3


def threshold_for(model_id: str, far: float = DEFAULT_FAR) -> float:
    """The similarity threshold of ``model_id`` at ``far`` (one of the table's rates)."""
    table = THRESHOLDS.get(model_id)
    if table is None:
        raise ModelMismatchError(
            f"no thresholds for model {model_id!r}: known models are {sorted(THRESHOLDS)}"
        )
    for row in table:
        if row.far == far:
            return row.similarity
    rates = sorted(row.far for row in table if row.far > 0)
    raise ValueError(f"no threshold at FAR {far} for {model_id}: choose one of {rates}")
