"""HTTP query API and gallery: similar pins by id, text or image, from one live model version.

`create_api(ApiDeps(...), ApiConfig(...))` builds the FastAPI app from injected stores and
encoders; `create_api_from_settings(settings)` wires it to the configured services. See
docs/api.md for the endpoints, limits, errors and consistency settings.
"""

from pinclip.api.app import create_api
from pinclip.api.config import ApiConfig
from pinclip.api.encoders import VersionedEncoders
from pinclip.api.ports import ApiDeps
from pinclip.api.wiring import build_deps, create_api_from_settings

__all__ = [
    "ApiConfig",
    "ApiDeps",
    "VersionedEncoders",
    "build_deps",
    "create_api",
    "create_api_from_settings",
]
