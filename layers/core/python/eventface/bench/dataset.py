"""Reading a labelled face folder: labels.csv with columns file, identity, masked."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

GROUP = "group"


@dataclass(frozen=True, slots=True)
class LabelledImage:
    file: str
    identity: str
    masked: bool


def read_labels(root: Path) -> list[LabelledImage]:
    """Rows of ``root/labels.csv`` in file order; a missing column or file is a clear error."""
    path = Path(root) / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --data must be a folder with labels.csv and the images")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "identity", "masked"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}: need file, identity, masked")
        rows = [
            LabelledImage(row["file"], row["identity"], row["masked"].strip() in {"1", "true", "True"})
            for row in reader
        ]
    for row in rows:
        if not (Path(root) / row.file).is_file():
            raise FileNotFoundError(f"{row.file} is listed in labels.csv but missing under {root}")
    return rows
