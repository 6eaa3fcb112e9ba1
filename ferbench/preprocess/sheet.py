"""Contact sheets: a grid of preprocessed faces per class, as the network receives them.

One row per class, the first ``per_class`` faces of that class (in sample order) left to
right, the class name and its image count in a label column; faces are shown at their stored
size (after resize, before augmentation), scaled up by an integer factor so small crops stay
readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ferbench.errors import DataError

GAP = 2  # pixels between faces
LABEL_WIDTH = 150  # pixels of the label column
MIN_CELL = 96  # faces are scaled up by an integer factor to at least this many pixels high


def contact_sheet(images: np.ndarray, y: np.ndarray, classes: Sequence[str], per_class: int = 8,
                  title: str = "") -> np.ndarray:
    """The sheet as an H x W x 3 uint8 RGB array.

    Args:
        images: N x h x w (gray) or N x h x w x 3 (RGB) uint8 faces.
        y: N class indices into ``classes``.
        per_class: faces shown per row at most.
        title: written above the grid when given.
    """
    faces = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=3)
    height, width = faces.shape[1:3]
    factor = max(1, -(-MIN_CELL // height))
    cell_h, cell_w = height * factor, width * factor
    top = 28 if title else 0
    sheet = np.full((top + len(classes) * (cell_h + GAP) + GAP,
                     LABEL_WIDTH + per_class * (cell_w + GAP) + GAP, 3), 255, np.uint8)
    if title:
        cv2.putText(sheet, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    y = np.asarray(y)
    for row, name in enumerate(classes):
        members = np.flatnonzero(y == row)
        y0 = top + GAP + row * (cell_h + GAP)
        cv2.putText(sheet, f"{name} ({len(members)})", (6, y0 + cell_h // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for column, index in enumerate(members[:per_class]):
            x0 = LABEL_WIDTH + GAP + column * (cell_w + GAP)
            sheet[y0:y0 + cell_h, x0:x0 + cell_w] = cv2.resize(
                faces[index], (cell_w, cell_h), interpolation=cv2.INTER_NEAREST)
    return sheet


def stack_sheets(sheets: Sequence[np.ndarray]) -> np.ndarray:
    """Sheets (RGB arrays) one above the other, padded white to the widest."""
    width = max(sheet.shape[1] for sheet in sheets)
    padded = [np.pad(s, ((0, 8), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    return np.concatenate(padded)


def side_sheet(images: np.ndarray, y: np.ndarray, classes: Sequence[str], role: str, dataset: str,
               report: dict, per_class: int = 8) -> np.ndarray:
    """:func:`contact_sheet` of one protocol side, titled with its role, dataset and methods."""
    return contact_sheet(images, y, classes, per_class, title=f"{role}: {dataset} ({methods_text(report)})")


def methods_text(report: dict) -> str:
    """``landmarks 927, eyes 3``: how many images of a preprocessing report each method framed."""
    return ", ".join(f"{name} {count}" for name, count in (report.get("methods") or {}).items() if count)


def preprocess_summary(report: dict) -> str:
    """One line of a preprocessing report: images kept, methods, detection rate, eye spread and
    the images framed by a fallback, e.g. ``183 of 183 kept; eyes 183; detection rate 100.0%;
    eye spread 0.52 px; fallbacks 0``."""
    parts = [f"{report.get('kept', 0)} of {report.get('total', 0)} kept", methods_text(report) or "no images"]
    rate, spread = report.get("detection_rate"), report.get("eye_spread_px")
    if isinstance(rate, (int, float)):
        parts.append(f"detection rate {rate:.1%}")
    if isinstance(spread, (int, float)):
        parts.append(f"eye spread {spread:.2f} px")
    parts.append(f"fallbacks {sum(len(keys) for keys in (report.get('fallbacks') or {}).values())}")
    return "; ".join(parts)


def protocol_faces_png(data, per_class: int = 8) -> bytes:
    """PNG bytes of the sheet of every side of ``data`` (a :class:`ferbench.pipeline.ProtocolData`
    after ``attach_images``), stacked top to bottom: what ``faces.png`` of a run directory holds."""
    classes = list(data.protocol.classes)
    sheets = [side_sheet(side.images, side.y, classes, side.role, side.dataset, side.preprocess_report, per_class)
              for side in data.all_sides()]
    sheet = stack_sheets(sheets)
    gray = bool((sheet == sheet[..., :1]).all())  # gray faces: one channel is a third of the file
    ok, encoded = cv2.imencode(".png", sheet[..., 0] if gray else cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise DataError("faces.png", "OpenCV could not encode the contact sheet")
    return encoded.tobytes()


def write_protocol_faces(path: str | Path, data, per_class: int = 8) -> Path:
    """Write :func:`protocol_faces_png` of ``data`` to ``path`` (``inspect --faces``); return the path."""
    from ferbench.io import atomic_write_bytes

    if Path(path).suffix.lower() != ".png":
        raise DataError(path, "the contact sheet is a PNG: give a path ending in .png")
    return atomic_write_bytes(path, protocol_faces_png(data, per_class))
