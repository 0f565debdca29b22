"""5-point similarity alignment onto the standard 112x112 ArcFace template."""

from __future__ import annotations

import cv2
import numpy as np

ALIGNED_SIZE = 112

#: Where the 5 landmarks of a frontal face land in the 112x112 crop (insightface/ArcFace template;
#: SFace was trained on crops made with it).
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping source onto target.

    Umeyama's closed form; returns the 2x3 matrix for ``cv2.warpAffine``.

    Parameters
    ----------
    source, target
        Nx2 point sets, N >= 2, not all coincident.
    """
    src = np.asarray(source, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError("similarity_transform needs two point sets of the same shape, at least 2 points")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = float((src_c**2).sum()) / len(src)
    if src_var < 1e-12:
        raise ValueError("similarity_transform: source points are all at one place")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum()) / src_var
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp the face given by its 5 landmarks onto the template: a ``size`` x ``size`` BGR crop.

    A face much larger than the crop is first shrunk with area averaging: warping straight from a
    400 px face to 112 px with bilinear sampling aliases fine texture.
    """
    matrix = similarity_transform(landmarks, TEMPLATE * (size / ALIGNED_SIZE))
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 0.5:
        image, matrix = _shrink(image, matrix, max(2, int(0.5 / scale + 1e-6)))
    return np.asarray(
        cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    )


def _shrink(image: np.ndarray, matrix: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-downscale ``image`` by ``factor`` and adjust ``matrix`` so it maps the same points."""
    height, width = image.shape[:2]
    new_w, new_h = max(1, width // factor), max(1, height // factor)
    small = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA))
    # cv2.resize maps a small-image pixel p' to the source pixel (p' + 0.5) * f - 0.5.
    f = np.array([width / new_w, height / new_h])
    adjusted = matrix.copy()
    adjusted[:, :2] = matrix[:, :2] * f
    adjusted[:, 2] = matrix[:, 2] + matrix[:, :2] @ (0.5 * f - 0.5)
    return small, adjusted
