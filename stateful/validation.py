"""Input rules of the contract, checked before any I/O.

Each checker returns the value it accepted, as a plain `str` / `int` (never
the caller's subclass, whose methods could misbehave), or raises
`ValidationError` naming the argument. Nothing here calls a method a caller
could have overridden: values are read through the `str` and `int` base
implementations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from stateful.errors import ValidationError

MAX_NAMESPACE = 255
MAX_SERVICE_NAME = 255
MAX_UID = 1024
MAX_STATE = 4096
MAX_POD_ID = 2**31 - 1
MAX_PERSIST_SECONDS = 315_360_000  # ten years
MAX_TTL_SECONDS = MAX_PERSIST_SECONDS
PERMANENT = -1
_SHORTEST_MAX = min(MAX_NAMESPACE, MAX_UID, MAX_SERVICE_NAME)
#: Most uids a pod_links page asks the backend for.
MAX_PAGE_SIZE = 10_000


def _type_name(value: object) -> str:
    # type(value).__name__ cannot be overridden by the instance.
    return type(value).__name__


def check_string(argument: str, value: object, max_length: int) -> str:
    """Accept a non-empty `str` of at most ``max_length`` characters, no NUL, valid Unicode."""
    # Fast path: an exact ASCII str (the common case) needs only three cheap tests.
    if (
        type(value) is str
        and value.isascii()
        and 0 < len(value) <= max_length
        and "\x00" not in value
    ):
        return value
    return _check_string_slowly(argument, value, max_length)


def _check_string_slowly(argument: str, value: object, max_length: int) -> str:
    # type(), not isinstance(): an object can claim any class through __class__.
    if not issubclass(type(value), str):
        raise ValidationError(argument, f"must be a str, not {_type_name(value)}")
    text = str.__str__(value)  # a plain copy: a subclass's own methods are never called
    if not text:
        raise ValidationError(argument, "must not be empty")
    if len(text) > max_length:
        raise ValidationError(argument, f"must be at most {max_length} characters, got {len(text)}")
    if "\x00" in text:
        raise ValidationError(argument, "must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(argument, "must be valid Unicode (no lone surrogates)") from None
    return text


def check_namespace(value: object) -> str:
    """Validate a namespace."""
    return check_string("namespace", value, MAX_NAMESPACE)


def check_service_name(value: object, argument: str = "service_name") -> str:
    """Validate a service name."""
    return check_string(argument, value, MAX_SERVICE_NAME)


def check_uid(value: object, argument: str = "uid") -> str:
    """Validate a user id."""
    return check_string(argument, value, MAX_UID)


def check_link_key(namespace: object, uid: object, service_name: object) -> tuple[str, str, str]:
    """Validate the namespace, uid and service name of a link operation."""
    # Fast path (every link call): check_string's test done once for the three.
    if type(namespace) is str and type(uid) is str and type(service_name) is str:
        joined = namespace + uid + service_name
        if (
            len(joined) <= _SHORTEST_MAX  # then each one is within its own limit
            and namespace
            and uid
            and service_name
            and joined.isascii()
            and "\x00" not in joined
        ):
            return namespace, uid, service_name
    return check_namespace(namespace), check_uid(uid), check_service_name(service_name)


def check_state(value: object, argument: str = "state") -> str:
    """Validate a pod or workload state."""
    return check_string(argument, value, MAX_STATE)


def _check_int(argument: str, value: object) -> int:
    if type(value) is int:
        return value
    kind = type(value)  # not isinstance(): an object can claim any class through __class__
    if issubclass(kind, bool) or not issubclass(kind, int):
        raise ValidationError(argument, f"must be an int, not {_type_name(value)}")
    return int.__index__(cast(int, value))  # a plain int: a subclass's methods are never called


def check_pod_id(value: object) -> int:
    """Accept an `int` (not `bool`) in 0..2**31-1."""
    if type(value) is int and 0 <= value <= MAX_POD_ID:
        return value  # fast path: the common case, one test
    pod = _check_int("pod_id", value)
    if not 0 <= pod <= MAX_POD_ID:
        raise ValidationError("pod_id", f"must be in 0..{MAX_POD_ID}, got {pod}")
    return pod


def check_set_persist(value: object) -> int:
    """Accept -1 (permanent) or 1..315360000 seconds, for set operations."""
    if type(value) is int and (value == PERMANENT or 1 <= value <= MAX_PERSIST_SECONDS):
        return value  # fast path: the common case, one test
    seconds = _check_int("persist_seconds", value)
    if seconds != PERMANENT and not 1 <= seconds <= MAX_PERSIST_SECONDS:
        raise ValidationError(
            "persist_seconds",
            f"must be -1 (permanent) or 1..{MAX_PERSIST_SECONDS}, got {seconds}",
        )
    return seconds


def check_remove_persist(value: object) -> int:
    """Accept -1 or 0 (delete) or 1..315360000 seconds (keep as temporary), for removals."""
    seconds = _check_int("persist_seconds", value)
    if seconds not in (PERMANENT, 0) and not 1 <= seconds <= MAX_PERSIST_SECONDS:
        raise ValidationError(
            "persist_seconds",
            f"must be -1, 0 or 1..{MAX_PERSIST_SECONDS}, got {seconds}",
        )
    return seconds


def check_ttl(value: object) -> int | None:
    """Accept None (permanent) or 1..315360000 seconds, for a pod state's heartbeat TTL."""
    if value is None:
        return None
    seconds = _check_int("ttl_seconds", value)
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise ValidationError("ttl_seconds", f"must be None or 1..{MAX_TTL_SECONDS}, got {seconds}")
    return seconds


def check_page_size(value: object) -> int:
    """Accept a page size in 1..`MAX_PAGE_SIZE`."""
    size = _check_int("page_size", value)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"must be in 1..{MAX_PAGE_SIZE}, got {size}")
    return size


def check_seconds(argument: str, value: object) -> float | None:
    """Accept None or a positive, finite number of seconds (not `bool`)."""
    if value is None:
        return None
    kind = type(value)  # not isinstance(): an object can claim any class through __class__
    if issubclass(kind, bool) or not issubclass(kind, int | float):
        raise ValidationError(
            argument, f"must be a number of seconds or None, not {_type_name(value)}"
        )
    try:
        # Base implementations: a subclass's own methods are never called.
        if issubclass(kind, int):
            seconds = float(int.__index__(cast(int, value)))
        else:
            seconds = float.__float__(cast(float, value))
    except OverflowError:
        raise ValidationError(argument, "is too large") from None
    if not 0 < seconds < float("inf"):
        raise ValidationError(argument, f"must be a positive number of seconds, got {seconds!r}")
    return seconds


def check_unique_strings(argument: str, values: object, max_length: int) -> list[str]:
    """Validate an iterable of identifiers; return them deduplicated, in first-seen order.

    Any failure of the iterable itself (an ``__iter__`` or ``__next__`` that
    raises) is reported as a `ValidationError` too.
    """
    if isinstance(values, str | bytes | bytearray | memoryview):
        raise ValidationError(argument, "must be an iterable of str, not a single string")
    if type(values) is list or type(values) is tuple:
        items: Iterable[object] = values
    elif isinstance(values, Iterable):
        try:
            items = list(values)
        except Exception as exc:
            raise ValidationError(
                argument, f"could not be iterated: {type(exc).__name__}"
            ) from None
    else:
        raise ValidationError(argument, f"must be an iterable of str, not {_type_name(values)}")
    unique: dict[str, None] = {}
    for index, value in enumerate(items):
        unique[check_string(f"{argument}[{index}]", value, max_length)] = None
    return list(unique)
