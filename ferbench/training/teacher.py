"""Teacher logits for distillation, each distinct student image computed once per job.

A distilling student trains for thousands of epochs on a few views of each training image
(MicroExpNet: 3000 epochs x 8 fixed crops), and without a memory its teacher, a network 40-80x
larger, would run on every one of those image passes again. :class:`MemoisedTeacher` keys each
row of the student batch by its bytes and computes the teacher only for rows it has not seen:
with a finite set of views (fixed crop views, flips: :attr:`~ferbench.training.augment.Augmenter.views_per_image`)
the teacher runs once per (image, view) of the fold, as if its logits had been precomputed,
and with random augmentations (every row new) it costs one hash per row. The teacher is in eval
mode, so a row's logits do not depend on the batch it came in (up to float noise of the kernels;
the first computation is the one kept, so reruns with the same seed give the same numbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

MEMO_ENTRIES = 1 << 20
"""At most this many rows are remembered per teacher (1M x classes float32 logits); later new
rows are computed every time."""


class MemoisedTeacher:
    """``forward`` (student batch B x C x H x W -> teacher logits B x classes), remembered per row.

    ``computed`` counts the rows the teacher actually ran on, ``seen`` all rows asked for."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], max_entries: int = MEMO_ENTRIES):
        self.forward, self.max_entries = forward, max_entries
        self.logits: dict[bytes, torch.Tensor] = {}
        self.computed = self.seen = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.detach().to("cpu", torch.float32).contiguous().numpy()
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]
        new = list(dict.fromkeys(k for k in keys if k not in self.logits))  # first occurrence of each unseen row
        fresh: dict[bytes, torch.Tensor] = {}
        if new:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            logits = self.forward(x[torch.tensor([first[k] for k in new], device=x.device)])
            fresh = dict(zip(new, logits.detach()))
            room = max(0, self.max_entries - len(self.logits))
            self.logits.update(list(fresh.items())[:room])
        self.computed += len(new)
        self.seen += len(keys)
        return torch.stack([self.logits[k] if k in self.logits else fresh[k] for k in keys])
