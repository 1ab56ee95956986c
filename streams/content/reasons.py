"""Why an image could not be obtained: one exception type, a handful of stable reasons.

`ContentError` is a `DeterministicError` with stage ``fetch``: the error contract dead-letters
that event alone (retrying a hostile or dead URI cannot help). Reasons and details are coarse on
purpose — they end up on the dead-letter topic, so they never carry a port, an HTTP status, an
errno or a resolved address (that would make the worker a port scanner with a read-out). The
precise cause goes to the operator's log instead (`content_fetch_failed`).
"""

from __future__ import annotations

from typing import Literal

from streams.errors import DeterministicError

ContentReason = Literal[
    "unsupported_uri",  # malformed URI, bad IDNA host, scheme not in the allow-list
    "forbidden",  # the fetch policy refuses the target (address class, file outside roots, ...)
    "unreachable",  # the target did not deliver: no such file/name, refused, HTTP error, TLS ...
    "timeout",  # the total deadline (DNS + connect + body) passed
    "too_large",  # more bytes than the cap
    "bad_base64",  # inline image is not strict base64
]

#: The only details a dead letter ever carries, one fixed sentence per reason.
DETAILS: dict[str, str] = {
    "unsupported_uri": "the image URI is malformed or its scheme is not allowed",
    "forbidden": "the fetch policy does not allow this target",
    "unreachable": "the image could not be obtained from its URI",
    "timeout": "the image did not arrive within the fetch deadline",
    "too_large": "the image is larger than the byte cap",
    "bad_base64": "the inline image is not valid base64",
}


class ContentError(DeterministicError):
    """A pin's image could not be obtained; `reason` is one of `ContentReason`."""

    def __init__(self, reason: ContentReason, detail: str | None = None) -> None:
        super().__init__("fetch", reason, DETAILS[reason] if detail is None else detail)
        self.reason: ContentReason = reason
