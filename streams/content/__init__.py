"""Image bytes for pins: the one fetch path (policy, caps, deadline) and the inline-image store.

Public API (worker, backfill and API all use it; see docs/streams.md "Fetching images"):

- `FetchPolicy` — schemes, `file://` roots, development allow-lists, byte cap, total deadline.
- `ContentFetcher(policy)` — async: `fetch_uri`, `fetch_pin_image`, `fetch_many`, `aclose`.
- `BlockingFetcher(policy)` — the same fetcher for synchronous code: `fetch(uri)`, `close()`.
- `load_image_bytes(uri, policy)` / `fetch_image_bytes(uri, policy)` — one-shot helpers.
- `read_capped(chunks, max_bytes)` — the streamed byte cap, for other untrusted bodies.
- `ContentError(reason)` — every failure; a `DeterministicError` with stage "fetch".
- `ContentStore(root_url)` — content-addressed store for inline images; `content_root(state_dir)`
  is where it lives (always a file root).
"""

from streams.content.fetcher import (
    BlockingFetcher,
    ContentFetcher,
    fetch_image_bytes,
    inline_image_bytes,
    load_image_bytes,
)
from streams.content.http import read_capped
from streams.content.policy import FetchPolicy
from streams.content.reasons import ContentError, ContentReason
from streams.content.store import ContentStore, content_root

__all__ = [
    "BlockingFetcher",
    "ContentError",
    "ContentFetcher",
    "ContentReason",
    "ContentStore",
    "FetchPolicy",
    "content_root",
    "fetch_image_bytes",
    "inline_image_bytes",
    "load_image_bytes",
    "read_capped",
]
