"""The a6hub Chalice app: wiring only (blueprints, middleware, binary types).

Each route lives in the blueprint registered under its path prefix below; every HTTP route is
declared with `chalicelib.api.http.route` and its `Doc` (auth, body, paging, status).
"""

from chalice import Chalice

from chalicelib.api import (
    accounts,
    assignments,
    builds,
    files,
    forum,
    git,
    health_docs,
    jobs,
    live,
    middleware,
    modules,
    pipelines,
    projects,
    uploads,
    waveforms,
    webhooks,
)
from chalicelib.logs import configure_logging

PROJECTS = "/api/v1/projects"

configure_logging()
app = Chalice(app_name="a6hub", configure_logs=False)
# Live job updates: an API Gateway WebSocket API (chalicelib/api/live.py).
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.api.binary_types.append("multipart/form-data")
app.api.binary_types.extend(git.BINARY_TYPES)
app.register_middleware(middleware.request_context, "http")
app.register_blueprint(health_docs.bp)  # /health, /openapi.json, /docs
app.register_blueprint(accounts.bp, url_prefix="/api/v1/auth")  # register, login, me, tokens
app.register_blueprint(projects.bp, url_prefix=PROJECTS)  # projects, members, stars
app.register_blueprint(files.bp, url_prefix=PROJECTS)  # /{project_id}/files[/upload]
app.register_blueprint(uploads.bp, url_prefix=PROJECTS)  # /{project_id}/files/upload-url, uploads
app.register_blueprint(jobs.bp, url_prefix=PROJECTS)  # /{project_id}/jobs, logs, artifacts
app.register_blueprint(waveforms.bp, url_prefix=PROJECTS)  # /{project_id}/jobs/{job_id}/waveform*
app.register_blueprint(git.bp, url_prefix=PROJECTS)  # /{project_id}/git/*, fork; /import
app.register_blueprint(modules.bp, url_prefix=PROJECTS)  # /{project_id}/modules, files/*/parse
app.register_blueprint(pipelines.bp, url_prefix=PROJECTS)  # /{project_id}/pipelines*, badge.svg
app.register_blueprint(assignments.bp, url_prefix="/api/v1/assignments")  # accept, grades
app.register_blueprint(webhooks.bp, url_prefix=PROJECTS)  # /{project_id}/webhooks*, deliveries
app.register_blueprint(forum.bp, url_prefix="/api/v1/forum")  # categories, topics, posts
app.register_blueprint(builds.bp, url_prefix="/api/v1/builds")  # presets, pdks, /{project_id}/build*
app.register_blueprint(live.bp)  # WebSocket $connect/$default/$disconnect, stream handlers
