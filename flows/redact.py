"""Credentials in a ``--path`` URL (``https://user:token@host/...``, presigned query strings)
never reach a record: MLflow params and tags, the model card, Prefect parameters, logs.

The CLI swaps such a value for a reference to a Prefect ``Secret`` block before the flow
starts (so the flow run's parameters hold only the reference); the flow resolves it
where the data is read; every record gets the redacted form.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_PREFIX = "prefect-secret:"
HIDDEN = "***"


def redact(value: Any) -> Any:
    """``value`` with a URL's user info and query string replaced by ``***``; others unchanged."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rsplit('@', 1)[1]}"
    query = HIDDEN if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_all(config: dict[str, Any]) -> dict[str, Any]:
    return {k: redact(v) for k, v in config.items()}


def hide(overrides: dict[str, Any]) -> dict[str, Any]:
    """Store each credential-bearing value in a Prefect Secret; return the overrides with references."""
    from prefect.blocks.system import Secret

    out = dict(overrides)
    for key, value in overrides.items():
        if redact(value) != value:
            name = "mlzoo-data-" + hashlib.sha256(value.encode()).hexdigest()[:16]
            Secret(value=value).save(name, overwrite=True)
            out[key] = SECRET_PREFIX + name
    return out


def reveal(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The overrides with Secret references replaced by their values (inside the flow only)."""
    if not overrides:
        return {}
    from prefect.blocks.system import Secret

    return {
        k: Secret.load(v.removeprefix(SECRET_PREFIX)).get() if isinstance(v, str) and v.startswith(SECRET_PREFIX) else v
        for k, v in overrides.items()
    }
