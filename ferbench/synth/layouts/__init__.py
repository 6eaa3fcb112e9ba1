"""One writer per dataset layout: synthetic faces stored exactly as the real dataset ships.

One module per layout, named as the loaders in :mod:`ferbench.data.loaders` are; every writer
has the signature ``write_<layout>(out_dir, shape, seed, workers=1) -> root`` and is registered
in :data:`WRITERS` under the layout name. ``root`` is the folder a loader
should be pointed at. Pictures are drawn by :func:`ferbench.synth.face.render_face`; every
subject, sequence and image draws from its own random stream, so the files do not depend on
``workers`` (subjects are spread over that many processes).

Where a ``paper`` shape departs from the real set (to keep disk and time reasonable):
CK+ sequences have 6-10 frames (real: 10-60); Oulu-CASIA 6-10 frames, VL camera and Strong
illumination only; FER2013 and RAF-DB write 1/10 of the rows (2871/359/359 and 1227/307) with
the real class proportions; KDEF only the straight view; pictures are smaller than the real
ones (BU-3DFE 192x192 gray, NimStim 240x192 gray, KDEF 381x281, MMI 360x288 videos of 9-15
frames); RAF-DB only aligned faces; MMI only sessions with an Emotion label, front or profile view
(no dual view).

Shared pieces: :mod:`.common` (registry, worker pool, file writing), :mod:`.stills` (still
pictures of subjects), :mod:`.wild` (in-the-wild crops), :mod:`.truth` (faces with true eyes).
Importing this package registers every writer.
"""

# imported in this order, which is the order of WRITERS (and of ferbench.synth.LAYOUTS)
from ferbench.synth.layouts import (  # noqa: F401  (imported to register the writers)
    ckplus,
    jaffe,
    oulu_casia,
    mmi,
    fer2013,
    generic,
    bu3dfe,
    nimstim,
    kdef,
    rafdb,
)
from ferbench.synth.layouts.common import WRITERS, apex
from ferbench.synth.layouts.truth import truth_faces

__all__ = ["WRITERS", "apex", "truth_faces"]
