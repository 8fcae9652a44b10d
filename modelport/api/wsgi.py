"""WSGI entry point for gunicorn: `gunicorn modelport.api.wsgi:app`."""

from modelport.api import create_app

app = create_app()
