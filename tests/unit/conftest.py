"""Fixtures for unit tests: the logging local image server (tests/fetch_servers.py)."""

from fetch_servers import image_server

__all__ = ["image_server"]
