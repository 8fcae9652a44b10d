"""Flask app factory. The API is light: it validates, records, enqueues and answers polls.

It never imports torch, transformers, modelport.tasks or modelport.workers.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask_cors import CORS

from modelport.core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        MAX_CONTENT_LENGTH=settings.MAX_CONTENT_LENGTH,
        JSON_SORT_KEYS=False,
        MODELPORT=settings,
    )
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    CORS(
        app,
        resources={r"/api/*": {"origins": settings.ALLOWED_ORIGINS}},
        supports_credentials=False,
        expose_headers=["Location", "Retry-After"],
        allow_headers=["Authorization", "Content-Type"],
    )

    from modelport.api import auth, benchmark, errors, generate, health, jobs, monitoring, realtime
    from modelport.api.dashboard import bp as dashboard_bp
    from modelport.api.openapi import bp as openapi_bp

    errors.register(app)
    auth.install(app)
    for blueprint in (health.bp, generate.bp, benchmark.bp, jobs.bp, monitoring.bp, dashboard_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(openapi_bp)
    realtime.init_app(app)
    return app
