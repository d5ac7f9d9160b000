"""Input rules of the contract, checked before any I/O.

Each checker returns the value it accepted (normalised where the rule allows it)
or raises `ValidationError` naming the argument.
"""

from __future__ import annotations

from collections.abc import Iterable

from stateful.errors import ValidationError

MAX_NAMESPACE = 255
MAX_SERVICE_NAME = 255
MAX_UID = 1024
MAX_STATE = 4096
MAX_POD_ID = 2**31 - 1
MAX_PERSIST_SECONDS = 315_360_000  # ten years
PERMANENT = -1


def check_string(argument: str, value: object, max_length: int) -> str:
    """Accept a non-empty `str` of at most ``max_length`` characters, no NUL, valid Unicode."""
    if not isinstance(value, str):
        raise ValidationError(argument, f"must be a str, not {type(value).__name__}")
    if not value:
        raise ValidationError(argument, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(
            argument, f"must be at most {max_length} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise ValidationError(argument, "must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(argument, "must be valid Unicode (no lone surrogates)") from None
    return str(value)


def check_namespace(value: object) -> str:
    """Validate a namespace."""
    return check_string("namespace", value, MAX_NAMESPACE)


def check_service_name(value: object, argument: str = "service_name") -> str:
    """Validate a service name."""
    return check_string(argument, value, MAX_SERVICE_NAME)


def check_uid(value: object, argument: str = "uid") -> str:
    """Validate a user id."""
    return check_string(argument, value, MAX_UID)


def check_state(value: object) -> str:
    """Validate a pod or workload state."""
    return check_string("state", value, MAX_STATE)


def check_pod_id(value: object) -> int:
    """Accept an `int` (not `bool`) in 0..2**31-1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("pod_id", f"must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_POD_ID:
        raise ValidationError("pod_id", f"must be in 0..{MAX_POD_ID}, got {value}")
    return int(value)


def _check_persist_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("persist_seconds", f"must be an int, not {type(value).__name__}")
    return int(value)


def check_set_persist(value: object) -> int:
    """Accept -1 (permanent) or 1..315360000 seconds, for set operations."""
    seconds = _check_persist_int(value)
    if seconds != PERMANENT and not 1 <= seconds <= MAX_PERSIST_SECONDS:
        raise ValidationError(
            "persist_seconds",
            f"must be -1 (permanent) or 1..{MAX_PERSIST_SECONDS}, got {seconds}",
        )
    return seconds


def check_remove_persist(value: object) -> int:
    """Accept -1 or 0 (delete) or 1..315360000 seconds (keep as temporary), for removals."""
    seconds = _check_persist_int(value)
    if seconds not in (PERMANENT, 0) and not 1 <= seconds <= MAX_PERSIST_SECONDS:
        raise ValidationError(
            "persist_seconds",
            f"must be -1, 0 or 1..{MAX_PERSIST_SECONDS}, got {seconds}",
        )
    return seconds


def check_unique_strings(argument: str, values: object, max_length: int) -> list[str]:
    """Validate an iterable of identifiers; return them deduplicated, in first-seen order."""
    if isinstance(values, str | bytes | bytearray | memoryview):
        raise ValidationError(argument, "must be an iterable of str, not a single string")
    if not isinstance(values, Iterable):
        raise ValidationError(argument, f"must be an iterable of str, not {type(values).__name__}")
    unique: dict[str, None] = {}
    for index, value in enumerate(values):
        unique[check_string(f"{argument}[{index}]", value, max_length)] = None
    return list(unique)
