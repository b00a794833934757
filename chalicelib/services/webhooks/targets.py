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

from chalicelib.services.git import url_guard


class WebhookRefused(url_guard.ImportRefused):
    """The URL may not receive webhooks (422 at creation; a `refused` delivery at send time)."""


def check_form(url: str) -> url_guard.ImportURL:
    """The URL's form (scheme, credentials, host, port, fragment); no network.

    Raises WebhookRefused with the reason.
    """
    private = url_guard.allow_private()
    policy = url_guard.URLPolicy(
        schemes={"https": 443, **({"http": 80} if private else {})},
        schemes_hint="webhooks are sent over https:// only", low_ports=frozenset({80, 443}),
        credentials_hint="deliveries are signed with the webhook's secret "
                         "(X-A6hub-Signature-256)",
        allow_query=True)
    try:
        return url_guard.parse_url(url, policy)
    except url_guard.ImportRefused as e:
        raise WebhookRefused(f"url: {e.detail}") from e


def check_url(url: str) -> url_guard.ImportURL:
    """Form and resolution: refused (WebhookRefused, a 422) when the host is internal."""
    target = check_form(url)
    try:
        url_guard.resolve(target.host, target.port)
    except url_guard.ImportRefused as e:
        raise WebhookRefused(f"url: {str(e.detail).replace('importing from', 'sending to')}"
                             ) from e
    return target
