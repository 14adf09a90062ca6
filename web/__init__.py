"""FastAPI: REST API, webhook endpoints, dashboard, live streams."""

__all__ = ["WebSettings", "create_app"]


def __getattr__(name: str) -> object:
    # Lazy, so importing one route module does not build the whole app's imports.
    if name == "create_app":
        from web.app import create_app

        return create_app
    if name == "WebSettings":
        from web.config import WebSettings

        return WebSettings
    raise AttributeError(f"module 'web' has no attribute {name!r}")
