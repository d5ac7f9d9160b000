"""The exceptions of `stateful`: one base class, and the kinds of failure under it."""

from __future__ import annotations


class StatefulError(Exception):
    """Base class of every error this library raises."""


class ValidationError(StatefulError, ValueError):
    """A call's argument breaks the input rules; nothing was written.

    ``argument`` names the offending parameter.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class BackendError(StatefulError):
    """The store failed. The driver's exception, if any, is ``__cause__``."""


class BackendUnavailable(BackendError):
    """The store could not be reached, the connection broke, or the call timed out.

    The outcome of a write that raised this is unknown: it may or may not
    have taken effect.
    """


class SchemaError(BackendError):
    """The SQL schema is missing or outdated; the message says how to migrate."""


class PoolExhausted(BackendUnavailable):
    """Every connection of the backend's pool stayed busy for the whole wait.

    Nothing was sent to the store: unlike other `BackendUnavailable` errors,
    the call certainly did not take effect. Raised when the wait for a
    connection outlasts the pool's own wait limit or the operation's timeout.
    """
