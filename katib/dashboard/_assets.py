"""Serving the dashboard: the page at ``/`` and its assets under ``/static/<hash>/``.

The hash is of every asset's content, so an asset URL names one version forever: assets are
cached for a year (``immutable``) and the page, which is small, is revalidated each time.
Text assets are gzip-compressed once, on first request, and kept in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

STATIC = Path(__file__).parent / "static"
#: Files of static/ that are served (the page template is rendered, not served).
_SERVED_SUFFIXES = frozenset({".js", ".css", ".svg", ".png", ".txt", ".LICENSE"})
_YEAR = "public, max-age=31536000, immutable"
# Everything from this origin; plotly and uPlot set inline styles, images are data: URLs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    raw: bytes
    gzipped: bytes | None
    media_type: str


def _files() -> list[Path]:
    return sorted(
        p for p in STATIC.rglob("*") if p.is_file() and p.suffix in _SERVED_SUFFIXES
    )


@cache
def version() -> str:
    """A hash of every asset: part of their URLs, so a new version is never a stale cache."""
    digest = hashlib.sha256()
    for path in _files():
        digest.update(path.relative_to(STATIC).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


_assets: dict[str, Asset] = {}
_lock = threading.Lock()


def _media_type(path: Path) -> str:
    if path.suffix == ".js":
        return "text/javascript; charset=utf-8"
    if path.suffix == ".LICENSE":
        return "text/plain; charset=utf-8"
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def asset(relative: str) -> Asset | None:
    """The asset at ``relative`` (a path under static/), or None."""
    with _lock:
        found = _assets.get(relative)
    if found is not None:
        return found
    path = (STATIC / relative).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        return None
    if path.suffix not in _SERVED_SUFFIXES:
        return None
    raw = path.read_bytes()
    media = _media_type(path)
    packed = gzip.compress(raw, compresslevel=9, mtime=0) if media.startswith("text/") else None
    found = Asset(raw, packed if packed is not None and len(packed) < len(raw) else None, media)
    with _lock:
        _assets[relative] = found
    return found


@cache
def page() -> bytes:
    """The single page, with asset URLs under this version's path."""
    template = (STATIC / "index.html").read_text(encoding="utf-8")
    return template.replace("{{static}}", f"/static/{version()}").encode()


_warming: threading.Thread | None = None


def _warm() -> None:
    for path in _files():
        asset(path.relative_to(STATIC).as_posix())


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its assets at ``/static/...`` on ``app``.

    The assets are compressed in a background thread right away (once per process), so that
    the first visitor does not wait for it.
    """
    global _warming
    with _lock:
        if _warming is None:
            _warming = threading.Thread(target=_warm, name="dashboard-assets", daemon=True)
            _warming.start()

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        body = page()
        headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding", **_SECURITY_HEADERS}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    @app.get("/static/{version_hash}/{path:path}", include_in_schema=False)
    def static(version_hash: str, path: str, request: Request) -> Response:
        found = asset(path)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        # An old page asking for an old version gets today's file, but not for a year.
        cache_control = _YEAR if version_hash == version() else "no-cache"
        headers = {
            "Cache-Control": cache_control,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        body = found.raw
        if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=found.media_type, headers=headers)
