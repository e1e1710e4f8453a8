"""Find a dataset's original files in the data directory, download the missing ones, verify all.

Every file is checked against the card's sha256. Hashing a few tens of MB on every load would be
wasteful, so a verified hash is remembered by (absolute path, size, mtime, inode): in memory for
the process and, when a cache directory is given, in ``<cache_dir>/sha256.json`` across processes.
Any change to the file (size or modification time) makes it hash again.

Downloads go to a temporary file in the target folder, are hashed while they stream, and are
renamed into place only when the hash matches; on any failure nothing is left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from mlffbench.errors import DataError
from mlffbench.plugin.registry import DataFile, DatasetCard

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0
HASH_CACHE_NAME = "sha256.json"

_memory: dict[tuple, str] = {}
_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _disk_cache_path(cache_dir: Path | None) -> Path | None:
    return None if cache_dir is None else Path(cache_dir) / HASH_CACHE_NAME


def _read_disk_cache(cache_file: Path | None) -> dict[str, str]:
    if cache_file is None:
        return {}
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_disk_cache(cache_file: Path, entries: dict[str, str]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entries, out, indent=0, sort_keys=True)
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only cache only costs speed
        log.debug("cannot write %s: %s", cache_file, exc)


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of ``path``, remembered by (path, size, mtime, inode) in memory and in ``cache_dir``."""
    path = Path(path)
    key = _stat_key(path)
    with _lock:
        if key in _memory:
            return _memory[key]
    digest = _read_disk_cache(_disk_cache_path(cache_dir)).get(json.dumps(list(key)))
    if not isinstance(digest, str):
        digest = sha256_file(path)
    _remember(key, digest, cache_dir)
    return digest


def _remember(key: tuple, digest: str, cache_dir: Path | None) -> None:
    with _lock:
        _memory[key] = digest
    cache_file = _disk_cache_path(cache_dir)
    if cache_file is None:
        return
    disk = _read_disk_cache(cache_file)  # re-read: another process may have added entries
    disk_key = json.dumps(list(key))
    if disk.get(disk_key) != digest:
        # forget older records of the same path (an earlier size/mtime), keep the rest
        disk = {k: v for k, v in disk.items() if not k.startswith(json.dumps([key[0]])[:-1] + ",")}
        disk[disk_key] = digest
        _write_disk_cache(cache_file, disk)


def forget_hashes() -> None:
    """Drop the in-memory hash cache (tests)."""
    with _lock:
        _memory.clear()


def locate_files(card: DatasetCard, data_dir: Path, download: bool, cache_dir: Path | None = None) -> list[Path]:
    """Paths of the card's files in ``data_dir``, each verified against its sha256.

    A missing file is downloaded from its URL when ``download`` is true; otherwise, or when the
    card gives no URL, a DataError says which file is missing where.
    """
    data_dir = Path(data_dir)
    found = []
    for entry in card.files:
        target = data_dir / entry.path
        if target.is_file():
            verify_file(card, entry, target, cache_dir)
        elif not download:
            raise DataError(
                f"dataset '{card.name}': file '{entry.path}' not found in DATA_DIR ({data_dir}); "
                "set --data-dir / MLFFBENCH_DATA_DIR or allow downloading"
            )
        else:
            download_file(card, entry, target, cache_dir)
        found.append(target)
    return found


def verify_file(card: DatasetCard, entry: DataFile, path: Path, cache_dir: Path | None = None) -> str:
    """Check a present file against the card's sha256 (an empty sha256 in the card skips the check)."""
    try:
        actual = file_sha256(path, cache_dir)
    except OSError as exc:
        raise DataError(f"dataset '{card.name}': file '{path}' cannot be read ({exc.strerror})") from None
    if entry.sha256 and actual != entry.sha256.lower():
        raise DataError(
            f"dataset '{card.name}': file '{path}' has sha256 {actual}, expected {entry.sha256} "
            "(corrupt or a different version; remove it to download it again)"
        )
    return actual


def download_file(card: DatasetCard, entry: DataFile, target: Path, cache_dir: Path | None = None) -> Path:
    """Download ``entry.url`` to ``target`` via a temporary file; verify; rename. Nothing is left on failure."""
    if not entry.url:
        raise DataError(
            f"dataset '{card.name}': file '{entry.path}' is missing and the card gives no url to download it"
        )
    created: list[Path] = []
    tmp: Path | None = None
    try:
        created = _make_parents(target.parent)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        tmp = Path(tmp_name)
        log.info("downloading %s -> %s", entry.url, target)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if entry.sha256 and actual != entry.sha256.lower():
            raise DataError(
                f"dataset '{card.name}': download of '{entry.path}' from {entry.url} has sha256 {actual}, "
                f"expected {entry.sha256}; nothing was kept"
            )
        os.replace(tmp, target)
        tmp = None
    except urllib.error.HTTPError as exc:
        exc.close()  # an HTTPError holds the open response
        raise DataError(
            f"dataset '{card.name}': download of '{entry.path}' from {entry.url} failed: HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"dataset '{card.name}': download of '{entry.path}' from {entry.url} failed: {reason}"
        ) from None
    finally:
        if tmp is not None or not target.exists():
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            _remove_empty(created)
    _remember(_stat_key(target), actual, cache_dir)
    return target


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the ones created, deepest first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
