"""Checkpoint files: one zip holding the loop's JSON state and the backend's state bytes.

Writes are atomic (temp file in the same folder, then rename), so a run killed while
writing keeps its previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from mlffbench.errors import RunError


def save(path: Path, loop: dict[str, Any], state: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("loop.json", json.dumps(loop))
            z.writestr("state.bin", state)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a file-size limit, a read-only folder: the previous checkpoint stays
        tmp.unlink(missing_ok=True)
        raise RunError(f"could not write checkpoint '{path}': {exc.strerror or exc}") from None


def load(path: Path) -> tuple[dict[str, Any], bytes]:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint '{path}' not found")
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("loop.json")), z.read("state.bin")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise RunError(f"checkpoint '{path}' is unreadable: {exc}") from None
