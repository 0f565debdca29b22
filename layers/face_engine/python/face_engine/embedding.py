"""SFace embeddings through onnxruntime: batched, L2-normalised, tagged with the model id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from face_engine.alignment import ALIGNED_SIZE
from face_engine.types import Embedding


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class SFaceEmbedder:
    """Embeds aligned 112x112 BGR faces with SFace.

    Parameters
    ----------
    session
        An onnxruntime session of the prepared SFace model (dynamic batch).
    model_id
        Stored with every embedding so templates of different models are never compared.
    """

    def __init__(self, session: Any, model_id: str) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.model_id = model_id

    def vectors(self, faces: Sequence[np.ndarray], *, flip: bool = False) -> np.ndarray:
        """(N, 128) L2-normalised float32 embeddings of aligned BGR faces.

        With ``flip`` each face is also embedded mirrored and the two are averaged: a test-time
        augmentation worth a second pass where latency matters less (registration).
        """
        if not faces:
            return np.zeros((0, 128), dtype=np.float32)
        for face in faces:
            if face.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3) or face.dtype != np.uint8:
                raise ValueError(
                    f"embed takes aligned {ALIGNED_SIZE}x{ALIGNED_SIZE}x3 uint8 faces, got {face.shape} "
                    f"{face.dtype}: align the face first"
                )
        batch = np.stack(faces)[..., ::-1]  # BGR -> RGB: SFace was trained on RGB
        if flip:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        raw = np.asarray(self._session.run(None, {self._input: blob})[0], dtype=np.float32)
        if flip:
            raw = l2_normalise(raw[: len(faces)]) + l2_normalise(raw[len(faces) :])
        return l2_normalise(raw)

    def embed(self, faces: Sequence[np.ndarray], *, flip: bool = False) -> list[Embedding]:
        """One Embedding per aligned face."""
        return [Embedding(vector=v, model_id=self.model_id) for v in self.vectors(faces, flip=flip)]
