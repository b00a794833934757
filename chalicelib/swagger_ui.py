"""Swagger UI for /docs, served from the swagger_ui_bundle package's files (no CDN, no internet)."""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from functools import lru_cache

# Only what the page loads; never a path taken from the request.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "oauth2-redirect.html": "text/html; charset=utf-8",
    "oauth2-redirect.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

# Absolute URLs under the stage prefix (/dev on API Gateway, "" locally): relative ones would
# resolve against /docs/ to /docs/docs/... when the page is opened with a trailing slash.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>a6hub API</title>
  <link rel="stylesheet" href="$prefix/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="$prefix/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="$prefix/docs/swagger-ui-bundle.js"></script>
  <script src="$prefix/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "$prefix/openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      });
    };
  </script>
</body>
</html>
"""


def page(prefix: str) -> str:
    """The Swagger UI page for an API served under `prefix` ("" or "/dev": a path, no host)."""
    return string.Template(_PAGE).substitute(prefix=html.escape(prefix, quote=True))


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: str | bytes  # str for text (sent as is), bytes for binary types (base64 through the gateway)

    @property
    def is_text(self) -> bool:
        return isinstance(self.body, str)


@lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> Asset | None:
    """A bundled file by name, read once per process; None when it is not one of ASSETS."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    from swagger_ui_bundle import swagger_ui_path  # only /docs needs the package

    data = (swagger_ui_path / name).read_bytes()
    if content_type.startswith("text/"):
        return Asset(content_type, data.decode("utf-8"))
    return Asset(content_type, data)
