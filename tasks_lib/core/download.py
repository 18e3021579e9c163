"""Downloads of public dataset files, through pooch: checked against known hashes and cached.

A file is fetched once into the download cache (``MLZOO_DOWNLOADS``, else ``MLZOO_HOME/downloads``,
else pooch's per-user cache) and reused by later prepares while its hash still matches; a
download whose hash differs from the one published for it fails instead of being read. A
user-given URL has no known hash: pooch logs the SHA-256 of what it fetched.
"""

from __future__ import annotations

import os
from pathlib import Path


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def download_cache() -> Path:
    if os.environ.get("MLZOO_DOWNLOADS"):
        return Path(os.environ["MLZOO_DOWNLOADS"])
    if os.environ.get("MLZOO_HOME"):
        return Path(os.environ["MLZOO_HOME"]) / "downloads"
    import pooch

    return Path(pooch.os_cache("mlzoo"))


def fetch(url: str, known_hash: str | None = None) -> Path:
    """The local path of ``url``'s file, downloaded (``pooch.retrieve``) unless already cached.

    ``known_hash`` (``"md5:..."`` / ``"sha256:..."``, the one published for the file; each reader
    keeps its upstream file's next to its URL): a mismatch raises ``ValueError``. None skips the
    check (a user-given URL). The cached file's name is unique per URL.
    """
    import pooch

    return Path(pooch.retrieve(url, known_hash, path=download_cache(), progressbar=False))
