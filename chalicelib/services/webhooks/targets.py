"""Which URLs a webhook may be sent to: the import guard's rules (services/git/url_guard.py).

A webhook URL must be https (http only where A6HUB_IMPORT_ALLOW_PRIVATE=1, local development
and tests), carry no credentials and no fragment, and every address its host resolves to must be
a global unicast address (no loopback, private, link-local/metadata, unique-local, ...). The
check runs when the webhook is created (422, nothing stored) and again at every delivery, where
`url_guard.connect` resolves once, checks, connects to a checked address and verifies the peer
(DNS rebinding cannot move a checked name to an internal address between check and connect).
Unlike an import URL, a query string is allowed (receivers often carry a routing token there).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chalicelib.services.git import url_guard


class WebhookRefused(url_guard.ImportRefused):
    """The URL may not receive webhooks (422 at creation; a `refused` delivery at send time)."""


def check_form(url: str) -> url_guard.ImportURL:
    """The URL's form (scheme, credentials, host, port, fragment); no network.

    Raises WebhookRefused with the reason.
    """
    if len(url) > url_guard.MAX_URL_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise WebhookRefused("url: too long, or contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise WebhookRefused(f"url: not a valid URL: {e}") from e
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if url_guard.allow_private() else ("https",)
    if scheme not in allowed:
        raise WebhookRefused("url: webhooks are sent over https:// only")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise WebhookRefused("url: credentials in the URL are not accepted; deliveries are "
                             "signed with the webhook's secret (X-A6hub-Signature-256)")
    host = parts.hostname or ""
    if not host:
        raise WebhookRefused("url: the URL has no host")
    if parts.fragment:
        raise WebhookRefused("url: the URL must not have a fragment")
    port = port or url_guard.SCHEMES[scheme]
    if port < 1024 and port not in (80, 443):
        raise WebhookRefused(f"url: port {port} is not allowed: use 443 or a port above 1023")
    path = parts.path or "/"
    return url_guard.ImportURL(url=url, scheme=scheme, host=host, port=port,
                               path=path + (f"?{parts.query}" if parts.query else ""))


def check_url(url: str) -> url_guard.ImportURL:
    """Form and resolution: refused (WebhookRefused, a 422) when the host is internal."""
    target = check_form(url)
    try:
        url_guard.resolve(target.host, target.port)
    except url_guard.ImportRefused as e:
        raise WebhookRefused(f"url: {str(e.detail).replace('importing from', 'sending to')}"
                             ) from e
    return target
