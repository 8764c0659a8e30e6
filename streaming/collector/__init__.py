"""The HTTP collector: ``create_app(settings, producer=None)`` builds the FastAPI app uvicorn serves."""

from streaming.collector.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
