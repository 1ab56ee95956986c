"""Errors a user acts on: `pinclip` prints them as one line on stderr and exits 1, no traceback.

`UserError` is raised by the commands themselves (bad version, unreadable dataset, timeout);
`user_message` also recognises a few errors from the libraries below that have one known
remedy, and says what to do. Anything else is a bug or an outage and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or set-up, stated so that the fix is obvious."""


LITE_LOCKED_HINT = (
    "; run the worker, API, backfill and retrain against one Milvus server instead: "
    '`pinclip services up && eval "$(pinclip services env)"` sets PINCLIP_MILVUS_URI'
)


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, else None."""
    if isinstance(exc, UserError):
        return str(exc)
    from encoder.weights import WeightsUnavailable

    if isinstance(exc, WeightsUnavailable):
        return str(exc)
    from vector_store.errors import LiteDirectoryLocked

    if isinstance(exc, LiteDirectoryLocked):
        return f"{exc}{LITE_LOCKED_HINT}"
    return None
