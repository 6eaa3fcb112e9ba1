"""Synthetic twins: a layout written once per (layout, shape, seed) and cached on disk.

A twin is generated into a temporary folder next to its final place and renamed into place
when complete, so a killed run never leaves a half-written twin that looks finished, and
concurrent callers are safe (whoever renames first wins; the others use that copy).

A killed generation leaves nothing behind, even under ``kill -9``:

- its worker processes exit within a fraction of a second of the parent's death (each
  watches its parent, see ``_run`` in :mod:`ferbench.synth.layouts.common`), so none keeps writing;
- its temporary folder, ``.<twin>.partial-<host>-<pid>-<random>``, is removed by the next
  :func:`twin_root` call under the same cache once process ``<pid>`` of this host no longer
  runs (POSIX; elsewhere such folders are left for the user to delete). A pid reused by a
  new process only delays the removal until that one ends.

:func:`write_twin` itself writes straight into the folder it is given: a killed call leaves
the files written so far there (its workers exit all the same).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from ferbench import paths
from ferbench.errors import UnknownName
from ferbench.synth.layouts import WRITERS
from ferbench.synth.plans import check_shape

GENERATOR_VERSION = 6
"""Bump whenever generated files change, so cached twins are regenerated (v1: development;
v3: MMI views and glasses, Oulu-CASIA ``PreProcess_Img`` crops; v4: CK+ ED²L block 0;
v5: CK+48 crops framed as a face detector box, FER2013 crops looser; v6: CK+48 crops placed
with a detector's jitter at 1.25 face widths, FER2013 margins 8-28%)."""

LAYOUTS: tuple[str, ...] = tuple(WRITERS)

_ROOT_FILE = ".ferbench-root"  # in a cached twin: the dataset root, relative (hidden: loaders skip it)
_PARTIAL = re.compile(r"\..+\.partial-(?P<host>.+)-(?P<pid>\d+)-[^-]+")  # a temporary folder's name


def write_twin(layout: str, out_dir: Path | str, seed: int = 0, shape: str = "paper",
               workers: int | None = None) -> Path:
    """Write the synthetic twin of ``layout`` into ``out_dir`` (created) and return its root.

    The root is the folder a loader should be pointed at (for ``ckplus`` the folder holding
    ``cohn-kanade-images/`` and ``Emotion/``; for ``fer2013`` the folder holding the csv).
    ``workers`` processes share the work (default: up to 2); the files do not depend on it.
    Workers are spawned, so a script calling this must guard its entry point with
    ``if __name__ == "__main__":`` (as any script using spawned processes must).
    """
    if layout not in WRITERS:
        raise UnknownName("synthetic layout", layout, LAYOUTS)
    check_shape(shape)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    return WRITERS[layout](out_dir, shape, seed, workers=workers)


def twin_root(layout: str, shape: str = "paper", seed: int = 0, cache_dir: Path | str | None = None,
              workers: int | None = None) -> Path:
    """The root of the cached twin, generating it first (with ``workers``, see :func:`write_twin`) if needed.

    Cached under ``cache_dir`` (default :func:`ferbench.paths.cache_dir`) in
    ``synthetic/<layout>-<shape>-seed<seed>-v<GENERATOR_VERSION>``. Temporary folders that
    killed generations left there are removed first (:func:`remove_abandoned`).
    """
    if layout not in WRITERS:
        raise UnknownName("synthetic layout", layout, LAYOUTS)
    check_shape(shape)
    base = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    final = base / "synthetic" / f"{layout}-{shape}-seed{seed}-v{GENERATOR_VERSION}"
    remove_abandoned(final.parent)
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{final.name}.partial-{socket.gethostname()}-{os.getpid()}-"
        temp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        try:
            root = write_twin(layout, temp, seed=seed, shape=shape, workers=workers)
            (temp / _ROOT_FILE).write_text(root.relative_to(temp).as_posix() + "\n")
            temp.chmod(0o755)  # mkdtemp made it private
            os.rename(temp, final)
        except OSError:
            if not final.is_dir():  # a failure of our own, not a concurrent caller winning the race
                raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return final / (final / _ROOT_FILE).read_text().strip()


def remove_abandoned(folder: Path) -> list[Path]:
    """Remove (and return) the temporary twin folders in ``folder`` whose generating process,
    named in the folder name, ran on this host and has ended."""
    removed = []
    host = socket.gethostname()
    for path in sorted(folder.glob(".*.partial-*")):
        match = _PARTIAL.fullmatch(path.name)
        if match and match["host"] == host and not _running(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """True while process ``pid`` exists (always True off POSIX, where it cannot be asked safely)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
