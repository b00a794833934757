"""The a6hub Chalice app: wiring only (blueprints, middleware, binary types)."""

from chalice import Chalice

from chalicelib.api import (
    auth,
    files,
    forum,
    git,
    jobs,
    live,
    meta,
    middleware,
    modules,
    projects,
    uploads,
    waveforms,
)
from chalicelib.logs import configure_logging

configure_logging()
app = Chalice(app_name="a6hub", configure_logs=False)
# Live job updates: an API Gateway WebSocket API (chalicelib/api/live.py).
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.api.binary_types.append("multipart/form-data")
app.api.binary_types.extend(git.BINARY_TYPES)
app.register_middleware(middleware.request_context, "http")
app.register_blueprint(meta.bp)
app.register_blueprint(auth.bp, url_prefix="/api/v1/auth")
app.register_blueprint(projects.bp, url_prefix="/api/v1/projects")
app.register_blueprint(files.bp, url_prefix="/api/v1/projects")
app.register_blueprint(uploads.bp, url_prefix="/api/v1/projects")
app.register_blueprint(jobs.bp, url_prefix="/api/v1/projects")
app.register_blueprint(waveforms.bp, url_prefix="/api/v1/projects")
app.register_blueprint(git.bp, url_prefix="/api/v1/projects")
app.register_blueprint(modules.bp, url_prefix="/api/v1/projects")
app.register_blueprint(forum.bp, url_prefix="/api/v1/forum")
app.register_blueprint(live.bp)
