"""The dashboard: a static page and its assets, served by the API process itself.

Plotly comes from the build the `plotly` Python package ships, so the page needs no CDN.
The page's own files live in `static/` and are served by the app's static route.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, Response, send_file, send_from_directory

from modelport.core.errors import NotFound

bp = Blueprint("dashboard", __name__)
STATIC = Path(__file__).parent / "static"
VENDOR_MAX_AGE = 7 * 24 * 3600  # versioned with the installed package; a week is safe


@cache
def plotly_js() -> Path | None:
    """Path of plotly.min.js inside the installed `plotly` package (None without it)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@bp.get("/")
@bp.get("/dashboard")
def index() -> Response:
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/static/vendor/plotly.min.js")
def plotly_bundle() -> Response:
    path = plotly_js()
    if path is None:
        raise NotFound("plotly is not installed: `pip install plotly` to draw the charts")
    return send_file(path, mimetype="text/javascript", max_age=VENDOR_MAX_AGE, conditional=True)
