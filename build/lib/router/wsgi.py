"""The WSGI entry point gunicorn imports in each worker: `router.wsgi:app`."""

from router import create_app

app = create_app()
