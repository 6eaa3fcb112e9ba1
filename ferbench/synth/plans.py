"""What a twin holds, before any pixel is drawn: subjects, sequences, labels and counts.

``paper`` plans reproduce the structure of the real dataset (CK+: 123 subjects, 593
sequences, 327 labelled ones from 118 subjects with the published per-class counts, 309
non-contempt ones from 106 subjects, the labelled sequences per fold 33/39/40/35/30/37/
29/29/33/22 of the 10-fold round robin by ascending subject id, every one of those folds
holding contempt, and the first of 10 contiguous ascending blocks, S005-S037, holding exactly
the six other expressions, as ED²L (002) l.212 reports; JAFFE: 213 images with the
per-code counts of a real copy; MMI: 236 labelled sessions of 32 subjects, of which the 209
front-view ones are those ED²L selects and the 125 of the 21 subjects without glasses those
C-SPP keeps). ``small`` plans keep every class and enough subjects for 10-fold subject splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferbench.errors import UnknownName
from ferbench.synth.identity import stream

SHAPES: tuple[str, ...] = ("paper", "small")
EMOTIONS: tuple[str, ...] = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CK_FRAMES = (6, 10)  # frames per CK+ sequence, inclusive (the real set has 10-60)


def check_shape(shape: str) -> str:
    """Return ``shape`` if it is a known twin shape, else raise UnknownName."""
    if shape not in SHAPES:
        raise UnknownName("synthetic shape", shape, SHAPES)
    return shape


# --------------------------------------------------------------------------- CK+


@dataclass(frozen=True)
class CkCounts:
    """Structure of a CK+ twin (see the module docstring for the paper values)."""

    subjects: int
    sequences: int
    labelled_subjects: int
    non_contempt_subjects: int   # labelled subjects with at least one non-contempt label
    per_class: tuple[tuple[str, int], ...]
    short_frames: int            # subjects filmed at 640x480 instead of 640x490
    colour: int                  # subjects stored as 3-channel pictures
    fold_sequences: tuple[int, ...] | None  # labelled sequences per ascending-id fold (DeRL rule)
    first_block: tuple[int, int] | None     # first and last subject number of ascending block 0 (ED²L)


CK_COUNTS: dict[str, CkCounts] = {
    "paper": CkCounts(123, 593, 118, 106, (("anger", 45), ("contempt", 18), ("disgust", 59), ("fear", 25),
                                           ("happy", 69), ("sadness", 28), ("surprise", 83)), 5, 3,
                       (33, 39, 40, 35, 30, 37, 29, 29, 33, 22), (5, 37)),
    "small": CkCounts(16, 48, 15, 14, (("anger", 6), ("contempt", 4), ("disgust", 6), ("fear", 5),
                                       ("happy", 7), ("sadness", 5), ("surprise", 7)), 1, 1, None, None),
}


@dataclass(frozen=True)
class CkSequence:
    """One onset-to-peak sequence; ``labelled`` ones get an Emotion file."""

    number: int        # 1, 2, ... within the subject
    expression: str    # what the frames show (also for unlabelled sequences)
    labelled: bool
    frames: int
    peak: float        # intensity of the last frame


@dataclass(frozen=True)
class CkSubject:
    """One CK+ subject: its name, camera (picture size, colour) and sequences."""

    name: str                  # "S005"
    size: tuple[int, int]      # (height, width)
    colour: bool
    sequences: tuple[CkSequence, ...]


def plan_ckplus(shape: str, seed: int) -> list[CkSubject]:
    """Subjects (ascending ids with gaps) and their sequences for a CK+ twin."""
    counts = CK_COUNTS[check_shape(shape)]
    rng = stream(seed, "ckplus-plan")
    labels = _ck_labels(counts, rng)
    unlabelled = dict.fromkeys(labels, 0)
    for i in labels:  # subjects without labels have at least one (unlabelled) sequence
        unlabelled[i] += not labels[i]
    n_labelled = sum(map(len, labels.values()))
    for i in rng.choice(counts.subjects, counts.sequences - n_labelled - sum(unlabelled.values())):
        unlabelled[int(i)] += 1

    ids = _subject_numbers(counts, rng)
    cameras = rng.permutation(counts.subjects)
    short = set(cameras[:counts.short_frames].tolist())
    colour = set(cameras[counts.short_frames:counts.short_frames + counts.colour].tolist())
    subjects = []
    for number, i in zip(ids, _ascending_order(labels, counts, rng)):
        content = [(label, True) for label in labels[i]]
        content += [(str(rng.choice(EMOTIONS)), False) for _ in range(unlabelled[i])]
        sequences = tuple(
            CkSequence(
                number=k + 1, expression=expression, labelled=labelled,
                frames=int(rng.integers(CK_FRAMES[0], CK_FRAMES[1] + 1)),
                peak=float(rng.uniform(0.85, 1.0) if labelled else rng.uniform(0.4, 1.0)),
            )
            for k, (expression, labelled) in enumerate(content[j] for j in rng.permutation(len(content)))
        )
        size = (480, 640) if i in short else (490, 640)
        subjects.append(CkSubject(f"S{number:03d}", size, i in colour, sequences))
    return subjects


def _ck_labels(counts: CkCounts, rng: np.random.Generator) -> dict[int, list[str]]:
    """Labels of each subject's labelled sequences (subject index -> labels).

    Roles: ``non_contempt_subjects`` regular subjects get every non-contempt label (each at
    least one, preferably no label twice) and some contempt ones; the other labelled subjects
    get one contempt label each; the remaining subjects get none.
    """
    order = [int(i) for i in rng.permutation(counts.subjects)]
    regular = order[:counts.non_contempt_subjects]
    contempt_only = order[counts.non_contempt_subjects:counts.labelled_subjects]
    per_class = dict(counts.per_class)
    labels: dict[int, list[str]] = {i: [] for i in range(counts.subjects)}
    for i in contempt_only:
        labels[i].append("contempt")
    for i in rng.choice(regular, per_class["contempt"] - len(contempt_only), replace=False):
        labels[int(i)].append("contempt")
    pool = [c for c in EMOTIONS if c != "contempt" for _ in range(per_class[c])]
    pool = [pool[k] for k in rng.permutation(len(pool))]
    for i, label in zip(regular, pool):
        labels[i].append(label)
    for label in pool[len(regular):]:
        fresh = [i for i in regular if label not in labels[i]]
        labels[int(rng.choice(fresh or regular))].append(label)
    return labels


def _first_block_size(counts: CkCounts) -> int:
    """Labelled subjects in ascending block 0 (``numpy.array_split`` sizes, as the ED²L split)."""
    return -(-counts.labelled_subjects // len(counts.fold_sequences or (1,)))


def _subject_numbers(counts: CkCounts, rng: np.random.Generator) -> np.ndarray:
    """Ascending subject numbers with gaps; with ``first_block`` (a, b) the first
    :func:`_first_block_size` numbers run from a to b (the subjects placed there are labelled)."""
    if counts.first_block is None:
        return np.sort(rng.choice(np.arange(5, 1000), counts.subjects, replace=False))
    first, last = counts.first_block
    block = _first_block_size(counts)
    inner = rng.choice(np.arange(first + 1, last), block - 2, replace=False)
    rest = rng.choice(np.arange(last + 1, 1000), counts.subjects - block, replace=False)
    return np.sort(np.concatenate([[first, last], inner, rest]))


def _ascending_order(labels: dict[int, list[str]], counts: CkCounts, rng: np.random.Generator) -> list[int]:
    """Subject indices in ascending-id order.

    With ``fold_sequences`` (k per-fold totals), the labelled subjects are ordered so that
    putting the labelled subject at sorted position ``r`` in fold ``r mod k`` (the DeRL rule)
    gives folds holding exactly those numbers of labelled sequences. With ``first_block`` too,
    every such fold holds a contempt subject, the first :func:`_first_block_size` labelled
    subjects (ascending block 0) hold every label but contempt, and no unlabelled subject sits
    among them.
    """
    labelled = [i for i in labels if labels[i]]
    if counts.fold_sequences is None:
        ranked = [labelled[j] for j in rng.permutation(len(labelled))]
    else:
        k = len(counts.fold_sequences)
        weights = [len(labels[i]) for i in labelled]
        folds = _balanced_folds(weights, counts.fold_sequences, rng)
        if counts.first_block is not None:
            folds = _contempt_outside_first_block(folds, [labels[i] for i in labelled], weights,
                                                  _first_block_size(counts), rng)
        ranked = [labelled[folds[r % k][r // k]] for r in range(len(labelled))]
    start = 0 if counts.first_block is None else _first_block_size(counts)
    for i in (i for i in labels if not labels[i]):  # subjects without labels sit anywhere (after block 0)
        ranked.insert(int(rng.integers(start, len(ranked) + 1)), i)
    return ranked


def _contempt_outside_first_block(folds: list[list[int]], labels: list[list[str]], weights: list[int],
                                  block: int, rng: np.random.Generator) -> list[list[int]]:
    """Rearrange round-robin ``folds`` (item indices; item at position j of fold f has rank
    f + k j) without changing any fold's weight, so that every fold holds an item labelled
    contempt and the items of rank < ``block`` hold every other label but no contempt."""
    k = len(folds)
    has_contempt = ["contempt" in item for item in labels]
    for g in range(k):  # equal-weight swaps bring contempt into folds without any
        while not any(has_contempt[j] for j in folds[g]):
            swaps = [(f, a, b) for f in range(k) if sum(has_contempt[j] for j in folds[f]) > 1
                     for a in folds[f] if has_contempt[a] for b in folds[g] if weights[b] == weights[a]]
            if not swaps:
                raise RuntimeError("cannot give every fold a contempt sequence")
            f, a, b = swaps[int(rng.integers(len(swaps)))]
            folds[f][folds[f].index(a)], folds[g][folds[g].index(b)] = b, a
    wanted = {label for item in labels for label in item} - {"contempt"}
    for _ in range(1000):  # shuffle each fold, then move non-contempt items to its block-0 places
        order = []
        for f, fold in enumerate(folds):
            shuffled = rng.permutation(fold).tolist()
            lead = [j for j in shuffled if not has_contempt[j]][:len(range(f, block, k))]
            order.append(lead + [j for j in shuffled if j not in lead])
        first = [order[r % k][r // k] for r in range(block)]
        if not any(has_contempt[j] for j in first) and {l for j in first for l in labels[j]} == wanted:
            return order
    raise RuntimeError("cannot fill ascending block 0 with every label but contempt")


def _balanced_folds(weights: list[int], targets: tuple[int, ...], rng: np.random.Generator) -> list[list[int]]:
    """Split item indices into ``len(targets)`` folds (fold f gets ``len(range(f, n, k))`` items)
    whose weights sum to ``targets``: a greedy fill, then random improving swaps."""
    k, n = len(targets), len(weights)
    sizes = [len(range(f, n, k)) for f in range(k)]
    folds: list[list[int]] = [[] for _ in range(k)]
    sums = [0] * k
    for j in sorted(rng.permutation(n).tolist(), key=lambda j: -weights[j]):
        f = max((f for f in range(k) if len(folds[f]) < sizes[f]), key=lambda f: targets[f] - sums[f])
        folds[f].append(j)
        sums[f] += weights[j]
    for _ in range(100_000):
        over = [f for f in range(k) if sums[f] > targets[f]]
        if not over:
            return folds
        f = int(rng.choice(over))
        g = int(rng.choice([g for g in range(k) if sums[g] < targets[g]]))
        a, b = int(rng.choice(folds[f])), int(rng.choice(folds[g]))
        moved = weights[a] - weights[b]
        if 0 < moved <= min(sums[f] - targets[f], targets[g] - sums[g]):
            folds[f][folds[f].index(a)], folds[g][folds[g].index(b)] = b, a
            sums[f], sums[g] = sums[f] - moved, sums[g] + moved
    raise RuntimeError(f"cannot split weights into folds summing to {targets}")


# --------------------------------------------------------------------------- JAFFE

JAFFE_SUBJECTS: tuple[str, ...] = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")
JAFFE_CODES: dict[str, str] = {
    "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}
JAFFE_PAPER_COUNTS: dict[str, int] = {"AN": 30, "DI": 29, "FE": 32, "HA": 31, "NE": 30, "SA": 31, "SU": 30}


@dataclass(frozen=True)
class JaffeImage:
    """One JAFFE picture, named ``KA.AN1.39.tiff`` after its fields."""

    subject: str
    code: str
    repetition: int   # 1, 2, ... per subject and code
    image_id: int     # running number over the whole set

    @property
    def name(self) -> str:
        return f"{self.subject}.{self.code}{self.repetition}.{self.image_id}.tiff"


def plan_jaffe(shape: str, seed: int) -> list[JaffeImage]:
    """Images per subject and code: paper = the real per-code counts, ~3 per subject; small 1-2."""
    check_shape(shape)
    rng = stream(seed, "jaffe-plan")
    repeats = {s: {} for s in JAFFE_SUBJECTS}
    for code in JAFFE_CODES:
        if shape == "paper":
            total = JAFFE_PAPER_COUNTS[code]
            base, extra = divmod(total, len(JAFFE_SUBJECTS))
            lucky = set(rng.choice(JAFFE_SUBJECTS, extra, replace=False).tolist())
            for s in JAFFE_SUBJECTS:
                repeats[s][code] = base + (s in lucky)
        else:
            for s in JAFFE_SUBJECTS:
                repeats[s][code] = 1 + int(rng.random() < 0.3)
    images, image_id = [], 1
    for s in JAFFE_SUBJECTS:
        for code in JAFFE_CODES:
            for rep in range(1, repeats[s][code] + 1):
                images.append(JaffeImage(s, code, rep, image_id))
                image_id += 1
    return images


# --------------------------------------------------------------------------- still-image sets


def draw_labels(rng: np.random.Generator, n: int, proportions: dict[str, int]) -> list[str]:
    """``n`` labels drawn with the real set's class proportions (each class at least once if n allows)."""
    names = list(proportions)
    p = np.asarray([proportions[k] for k in names], np.float64)
    drawn = [names[k] for k in rng.choice(len(names), n, p=p / p.sum())]
    if n >= len(names):  # make sure every class appears
        drawn[:len(names)] = names
        drawn = [drawn[k] for k in rng.permutation(n)]
    return drawn


# --------------------------------------------------------------------------- MMI


@dataclass(frozen=True)
class MmiSession:
    """One MMI session: an onset-apex-offset video of one basic expression."""

    session: int       # folder name under ``Sessions/``; also the take number in the video name
    subject: str       # "S001"
    expression: str
    frames: int
    peak: float        # intensity at the apex (the middle frame)
    view: str          # track view code of ``session.xml``: "0" front, "1" profile
    glasses: bool      # the subject wears glasses

    @property
    def stem(self) -> str:
        """``S001-101``: the name of the video and of its metadata file, without suffix."""
        return f"{self.subject}-{self.session:03d}"


@dataclass(frozen=True)
class MmiCounts:
    """Structure of an MMI twin: labelled sessions of all views, of which ``front`` are front
    view, and ``glasses_subjects`` subjects who wear glasses in all their sessions."""

    subjects: int
    sessions: int
    front: int
    glasses_subjects: int
    glasses_free_sessions: int  # sessions of the other subjects, all views


MMI_COUNTS: dict[str, MmiCounts] = {
    "paper": MmiCounts(32, 236, 209, 11, 125),  # ED²L: 236 of 32, 209 front; C-SPP: 125 of 21 glasses-free
    "small": MmiCounts(12, 84, 72, 3, 63),
}
MMI_FRAMES = (9, 15)  # frames per video, inclusive (real videos run for seconds at 25 fps)
MMI_EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "sadness", "surprise")


def plan_mmi(shape: str, seed: int) -> list[MmiSession]:
    """Sessions of an MMI twin, by ascending session number.

    Subjects (ids 1-54 with gaps) are drawn to wear glasses or not; each group shares its
    sessions equally, the remainder going one each to random subjects. A subject's first six
    sessions show the six expressions (in a random order), any further one a random
    expression. The profile-view sessions are drawn from all but each subject's first
    session (every subject keeps a front view), split between the groups in proportion to
    their sessions. Session numbers ascend with gaps.
    """
    counts = MMI_COUNTS[check_shape(shape)]
    rng = stream(seed, "mmi-plan")
    ids = np.sort(rng.choice(np.arange(1, 55), counts.subjects, replace=False))
    glasses = np.zeros(counts.subjects, bool)
    glasses[rng.choice(counts.subjects, counts.glasses_subjects, replace=False)] = True
    shares = np.zeros(counts.subjects, int)
    profile: set[tuple[int, int]] = set()  # (subject index, session index within the subject)
    n_profile = counts.sessions - counts.front
    free_profiles = round(n_profile * counts.glasses_free_sessions / counts.sessions)
    for group, total, group_profiles in ((~glasses, counts.glasses_free_sessions, free_profiles),
                                         (glasses, counts.sessions - counts.glasses_free_sessions,
                                          n_profile - free_profiles)):
        members = np.flatnonzero(group)
        shares[members] = total // len(members)
        shares[rng.choice(members, total % len(members), replace=False)] += 1
        later = [(int(i), k) for i in members for k in range(1, int(shares[i]))]
        profile.update(later[j] for j in rng.choice(len(later), group_profiles, replace=False))
    numbers = iter(100 + np.cumsum(rng.integers(1, 4, counts.sessions)))
    sessions = []
    for i, (number, share) in enumerate(zip(ids, shares)):
        order = [MMI_EMOTIONS[k] for k in rng.permutation(len(MMI_EMOTIONS))]
        for k in range(int(share)):
            expression = order[k] if k < len(order) else str(rng.choice(MMI_EMOTIONS))
            sessions.append(MmiSession(int(next(numbers)), f"S{number:03d}", expression,
                                       int(rng.integers(MMI_FRAMES[0], MMI_FRAMES[1] + 1)),
                                       float(rng.uniform(0.8, 1.0)), "1" if (i, k) in profile else "0",
                                       bool(glasses[i])))
    return sessions
