"""Downloads go through pooch: checked against the known hash, fetched once, then read from the cache."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from tasks_lib.core.data import datasets_mirror
from tasks_lib.core.download import fetch


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def test_fetch_checks_the_hash_and_downloads_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MLZOO_DOWNLOADS", str(tmp_path / "cache"))
    (tmp_path / "www").mkdir()
    payload = b"1,title,description\n" * 50
    (tmp_path / "www" / "news.csv").write_bytes(payload)
    (tmp_path / "www" / "other.csv").write_bytes(payload)
    md5 = "md5:" + hashlib.md5(payload).hexdigest()
    handler = functools.partial(_CountingHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _CountingHandler.hits = []
    try:
        first = fetch(f"{base}/news.csv", md5)
        second = fetch(f"{base}/news.csv", md5)  # a second prepare: read from the cache
        assert first == second and first.read_bytes() == payload
        assert _CountingHandler.hits == ["/news.csv"]
        assert first.is_relative_to(tmp_path / "cache")
        with pytest.raises(ValueError, match="(?i)hash"):
            fetch(f"{base}/other.csv", "md5:" + "0" * 32)  # what came is not the published file
    finally:
        server.shutdown()


def test_the_tiny_shakespeare_hash_matches_the_mirrors_unchanged_copy():
    import pooch

    from tasks_lib.tasks.text_generation.readers import TS_DIR, TS_FILE, TS_HASH

    mirror = datasets_mirror()
    if not mirror or not (mirror / TS_DIR / TS_FILE).is_file():
        pytest.skip("no dataset mirror")
    algorithm, value = TS_HASH.split(":")
    assert pooch.file_hash(str(Path(mirror) / TS_DIR / TS_FILE), alg=algorithm) == value
