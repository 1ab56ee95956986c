"""ApiConfig: the query API's knobs, from `Settings` (`PINCLIP_API_*`) or given directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pinclip.api.models import Consistency
from pinclip.settings import Settings


@dataclass(frozen=True)
class ApiConfig:
    consistency_search: Consistency = "Bounded"
    consistency_similar: Consistency = "Bounded"
    consistency_lookup: Consistency = "Strong"
    max_k: int = 100
    max_text_chars: int = 1000
    max_upload_bytes: int = 10_000_000
    # A request answered before its body ended (413, 401, 429) has the rest of its body read and
    # dropped, up to this many bytes and seconds, before the answer (pinclip.api.early_answers).
    max_discard_bytes: int = 64_000_000
    discard_timeout_s: float = 30.0
    max_image_queries: int = 4
    api_key: str = field(default="", repr=False)
    api_key_header: str = "X-API-Key"
    cors_origins: tuple[str, ...] = ()
    recent_pins: int = 24
    # Browsers may keep a content-addressed image for a day (its bytes never change), any other
    # image for five minutes (its URI could be re-pointed).
    image_max_age_s: int = 86_400
    mutable_image_max_age_s: int = 300
    preload_model: bool = True
    # The alias is re-read at most this often (two Milvus round trips on the server); a query
    # still uses one version throughout, and the previous one lives on for the swap's grace period.
    live_version_ttl_s: float = 1.0

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ApiConfig:
        values: dict[str, Any] = {
            "consistency_search": settings.api_consistency_search,
            "consistency_similar": settings.api_consistency_similar,
            "consistency_lookup": settings.api_consistency_lookup,
            "max_k": settings.api_max_k,
            "max_text_chars": settings.api_max_text_chars,
            "max_upload_bytes": settings.api_max_upload_bytes,
            "max_image_queries": settings.api_max_image_queries,
            "api_key": settings.api_key.get_secret_value(),
            "api_key_header": settings.api_key_header,
            "cors_origins": tuple(
                o.strip() for o in settings.api_cors_origins.split(",") if o.strip()
            ),
            "recent_pins": settings.api_recent_pins,
            "live_version_ttl_s": settings.api_live_version_ttl_s,
        }
        return cls(**{**values, **overrides})
