"""Check every part of a dataset against its manifest: present, same size, same sha256."""

from __future__ import annotations

import os

from ..records import Failure, Manifest, PartFile
from .write import file_sha256


def check_part(folder: str, part: PartFile) -> str | None:
    """Why the file of ``part`` in ``folder`` is not the one written, or None when it is."""
    file = os.path.join(folder, part.name)
    if not os.path.isfile(file):
        return "missing"
    size = os.path.getsize(file)
    if size != part.bytes:
        return f"{size} bytes, the manifest says {part.bytes}"
    try:
        digest = file_sha256(file)
    except OSError as err:
        return f"cannot be read ({err})"
    if digest != part.sha256:
        return "sha256 differs from the manifest's (damaged)"
    return None


def verify(path: str | os.PathLike[str]) -> list[Failure]:
    """The parts of the dataset at ``path`` that are missing or damaged, each with why.

    An empty list: every part is the file that was written.
    """
    folder = os.fspath(path)
    manifest = Manifest.read(folder)
    bad = []
    for part in manifest.files:
        why = check_part(folder, part)
        if why is not None:
            bad.append(Failure(os.path.join(folder, part.name), why))
    return bad
