"""Writing files so that a failure never leaves a partial file over a good one."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def replace_when_done(path, write) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it over ``path``.

    The folder is created if needed; if ``write`` fails the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file private (0600); give it the mode any new file gets
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _merge_into(src: Path, dst: Path) -> None:
    """Move every file under ``src`` to the same place under ``dst`` (each an atomic rename)."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(Path(root) / name, dst / rel / name)


@contextmanager
def staged_folder(final):
    """Yield a temporary folder beside ``final``; when the block succeeds, move its files into
    ``final`` (each replacing the file of the same name), else remove it.

    A stage that writes its outputs here never leaves a partial or wrong result over a good one:
    a failure, Ctrl-C or a kill leaves ``final`` as it was (a killed run leaves a hidden
    ``.NAME.partial-*`` folder beside it, which the next run of the stage ignores). ``final``
    must be a folder or not exist; a file there is refused before any work starts.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise ValueError(f"the output {final} is a file, not a folder: give a folder path")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final.mkdir(parents=True, exist_ok=True)
    try:
        _merge_into(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
