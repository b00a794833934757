"""Outbound webhooks: a project's owner is told over HTTPS, signed, when a pipeline ends.

- `manage`: the owner's routes (create with the URL checked and the secret shown once, list,
  delete, ping, recent deliveries).
- `events`: what is sent (the pipeline's outcome), a delivery row per webhook, queued.
- `delivery`: one signed attempt (the runner's side), retries with backoff through the queue.
- `targets`: which URLs may receive webhooks (the import SSRF guard, url_guard).
"""
