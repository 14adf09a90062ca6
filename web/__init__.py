"""FastAPI: REST API, webhook endpoints, dashboard, live streams."""

from web.app import create_app
from web.config import WebSettings

__all__ = ["WebSettings", "create_app"]
