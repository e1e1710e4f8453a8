"""Downloading missing files: a real HTTP server on loopback serves copies of real data files."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import pytest

from mlffbench.data import fetch
from mlffbench.data.fetch import locate_files
from mlffbench.data.loading import load_dataset
from mlffbench.errors import DataError
from mlffbench.plugin.manager import get_registry
from mlffbench.plugin.registry import DataFile, DatasetCard

TYPE_MAP = "water_deepmd/data_0/type_map.raw"
ANI = "ani1_gdb_s01/ani_gdb_s01.h5"


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, data_dir):
    """Serves tmp_path/served (holding copies of two real files) on 127.0.0.1; yields (base url, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(data_dir / TYPE_MAP, served / "type_map.raw")
    shutil.copyfile(data_dir / ANI, served / "ani_gdb_s01.h5")
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _card(url: str, sha256: str, path: str = "downloaded/water/type_map.raw") -> DatasetCard:
    return DatasetCard(
        name="download-test",
        format="deepmd-npy",
        files=(DataFile(path=path, sha256=sha256, url=url),),
        units={"energy": "eV", "length": "angstrom"},
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_verifies_and_is_not_repeated(server, tmp_path, data_dir):
    base, requests = server
    expected = _sha(data_dir / TYPE_MAP)
    card = _card(f"{base}/type_map.raw", expected)
    target_dir = tmp_path / "data"
    fetch.forget_hashes()

    [path] = locate_files(card, target_dir, download=True, cache_dir=tmp_path / "cache")
    assert path == target_dir / "downloaded/water/type_map.raw"
    assert path.read_bytes() == (data_dir / TYPE_MAP).read_bytes() == b"O\nH\n"
    assert requests == ["/type_map.raw"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["type_map.raw"]  # no temp file left

    locate_files(card, target_dir, download=True, cache_dir=tmp_path / "cache")
    assert requests == ["/type_map.raw"]  # present and verified: not downloaded again


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path, data_dir):
    base, requests = server
    wrong = hashlib.sha256(b"something else").hexdigest()
    card = _card(f"{base}/type_map.raw", wrong)
    target_dir = tmp_path / "data"
    target_dir.mkdir()
    with pytest.raises(DataError) as err:
        locate_files(card, target_dir, download=True)
    message = str(err.value)
    assert f"from {base}/type_map.raw has sha256 {_sha(data_dir / TYPE_MAP)}, expected {wrong}" in message
    assert "download-test" in message and "downloaded/water/type_map.raw" in message
    assert requests == ["/type_map.raw"]
    assert list(target_dir.rglob("*")) == []  # no file, no temp file, no new folders


def test_http_error_and_missing_url(server, tmp_path, data_dir):
    base, _ = server
    target_dir = tmp_path / "data"
    target_dir.mkdir()
    card = _card(f"{base}/no_such_file.raw", _sha(data_dir / TYPE_MAP))
    with pytest.raises(
        DataError, match=r"download of 'downloaded/water/type_map.raw' from .*/no_such_file.raw failed: HTTP 404"
    ):
        locate_files(card, target_dir, download=True)
    assert list(target_dir.rglob("*")) == []
    with pytest.raises(DataError, match="the card gives no url"):
        locate_files(_card("", _sha(data_dir / TYPE_MAP)), target_dir, download=True)


def test_load_dataset_downloads_a_whole_dataset(server, tmp_path, data_dir):
    """ani1-s01 with its URL pointed at the local server: downloaded, verified, parsed, and
    identical to the set loaded from the shared data directory."""
    base, requests = server
    card = get_registry().dataset("ani1-s01")
    local = card.replace(files=(DataFile(path=ANI, sha256=card.files[0].sha256, url=f"{base}/ani_gdb_s01.h5"),))
    downloaded = load_dataset(local, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", download=True)
    assert requests == ["/ani_gdb_s01.h5"]
    assert _sha(tmp_path / "data" / ANI) == card.files[0].sha256
    assert downloaded.n_configs == 10_800
    reference = load_dataset("ani1-s01", data_dir=data_dir, download=False)
    assert downloaded.fingerprint() == reference.fingerprint()
