"""Hostile input: every public executor method, fed anything, raises only ValidationError.

A spy backend records every call that gets through. For each example every
argument is either valid or hostile (wrong types, huge or nested values,
lone surrogates, NUL, out-of-range numbers, `str` / `int` subclasses and
impostors whose ``__eq__`` / ``__hash__`` / ``__str__`` / ``__len__`` /
``__iter__`` raise). The call must either raise `ValidationError` naming an
argument, with no backend call at all (so nothing was written), or reach
the backend with plain, valid `str` / `int` values only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateful import StatefulExecutor, ValidationError
from stateful.backends.memory import MemoryBackend
from stateful.validation import MAX_NAMESPACE, MAX_POD_ID, MAX_STATE, MAX_UID
from tests.reliability.conftest import scale

BACKEND_METHODS = (
    "set_service_state",
    "get_service_state",
    "remove_service_state",
    "set_workload_state",
    "get_workload_state",
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "get_linked_pod",
    "get_linked_pod_if_persist",
    "batch_get_linked_pod",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "get_link_service",
    "get_link_info",
    "pod_links_page",
    "count_pod_links",
    "remove_pod_links_page",
    "place_linked_pod",
)

# Each public method: its positional parameters and keyword-only ones, by kind.
METHODS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "set_service_state": (("ns", "svc", "pod", "state"), ("ttl",)),
    "get_service_state": (("ns", "svc"), ()),
    "remove_service_state": (("ns", "svc", "pod"), ()),
    "set_workload_state": (("ns", "svc", "state"), ()),
    "get_workload_state": (("ns", "services"), ()),
    "set_linked_pod": (("ns", "uid", "svc", "pod", "set_persist"), ()),
    "try_set_linked_pod": (("ns", "uid", "svc", "pod", "set_persist"), ()),
    "set_linked_pod_if_absent": (("ns", "uid", "svc", "pod", "set_persist"), ()),
    "get_linked_pod": (("ns", "uid", "svc"), ()),
    "get_linked_pod_if_persist": (("ns", "uid", "svc"), ()),
    "batch_get_linked_pod": (("ns", "uids", "svc"), ()),
    "remove_linked_pod": (("ns", "uid", "svc", "remove_persist"), ()),
    "remove_linked_pod_with_id": (("ns", "uid", "svc", "remove_persist", "pod"), ()),
    "get_link_service": (("ns", "uid"), ()),
    "get_link_info": (("ns", "uid", "svc"), ()),
    "pod_links": (("ns", "svc", "pod"), ("page_size",)),
    "count_pod_links": (("ns", "svc"), ()),
    "remove_pod_links": (("ns", "svc", "pod", "remove_persist"), ()),
    "place_linked_pod": (("ns", "uid", "svc", "set_persist"), ("states",)),
}
KEYWORD_NAMES = {"ttl": "ttl_seconds", "page_size": "page_size", "states": "states"}


class Boom(Exception):
    """Raised by the hostile objects' methods."""


def _boom(*_: Any, **__: Any) -> Any:
    raise Boom("hostile method called")


class EvilStr(str):
    """A str whose every overridable method raises."""

    __eq__ = __ne__ = __hash__ = __str__ = __len__ = __iter__ = __contains__ = _boom
    encode = isascii = __getitem__ = __format__ = _boom

    def __repr__(self) -> str:  # Hypothesis and failure messages need a repr
        return "EvilStr()"


class EvilInt(int):
    """An int whose every overridable method raises."""

    __eq__ = __ne__ = __hash__ = __index__ = __int__ = __lt__ = __le__ = _boom
    __gt__ = __ge__ = __str__ = __format__ = __bool__ = _boom

    def __repr__(self) -> str:
        return "EvilInt()"


class Impostor:
    """Claims to be a str / int (``__class__``) and raises from everything."""

    def __init__(self, claimed: type) -> None:
        object.__setattr__(self, "_claimed", claimed)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return object.__getattribute__(self, "_claimed")  # type: ignore[no-any-return]

    __eq__ = __hash__ = __str__ = __len__ = __iter__ = __index__ = __int__ = _boom

    def __repr__(self) -> str:
        return f"Impostor({object.__getattribute__(self, '_claimed').__name__})"


class EvilIterable:
    """An iterable that yields some names, then raises."""

    def __iter__(self) -> Iterator[str]:
        yield "a"
        raise Boom("iteration failed")


class EvilLen:
    """A sized iterable whose ``__len__`` raises."""

    def __len__(self) -> int:
        raise Boom("len failed")

    def __iter__(self) -> Iterator[str]:
        return iter(["a"])


def _hostile_objects() -> st.SearchStrategy[Any]:
    # Factories, not instances: each example gets fresh objects (iterators are one-shot).
    factories: list[Callable[[], Any]] = [
        lambda: EvilStr("ok"),
        lambda: EvilInt(3),
        lambda: Impostor(str),
        lambda: Impostor(int),
        lambda: Impostor(list),
        EvilIterable,
        EvilLen,
        lambda: iter(["a"]),
        lambda: (name for name in ["a", "b"]),
        lambda: [EvilStr("x")],
        lambda: ["a", Impostor(str)],
        lambda: [[["nested"]]],
        lambda: {"a": 1},
        lambda: {"a"},
        lambda: ("a", ("b",)),
        object,
        lambda: Boom,
    ]
    plain = [
        None,
        True,
        False,
        b"bytes",
        bytearray(b"x"),
        1.5,
        float("nan"),
        float("inf"),
        -0.0,
        "",
        "\x00",
        "a\x00b",
        "\ud800",
        "ok\udfff",
        "x" * (MAX_UID + 1),
        "y" * (MAX_STATE + 1),
        2**31,
        -1,
        -(2**63),
        2**64,
        10**100,
        315_360_001,
        0,
        -2,
    ]
    return st.sampled_from(factories).map(lambda make: make()) | st.sampled_from(plain)


_valid_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=8,
)
_any_text = st.text(max_size=8) | st.text(
    alphabet=st.characters(codec=None), min_size=0, max_size=4
)
_surrogate_text = st.builds(lambda a, b: a + "\udc80" + b, _valid_text, _valid_text)
_hostile = (
    _hostile_objects()
    | _any_text
    | _surrogate_text
    | st.integers()
    | st.lists(st.integers() | _any_text, max_size=3)
    | st.text(min_size=MAX_NAMESPACE, max_size=MAX_NAMESPACE + 2)
)

VALID: dict[str, st.SearchStrategy[Any]] = {
    "ns": _valid_text,
    "svc": _valid_text,
    "uid": _valid_text,
    "state": _valid_text,
    "pod": st.integers(0, MAX_POD_ID),
    "set_persist": st.sampled_from([-1, 1, 60, 315_360_000]),
    "remove_persist": st.sampled_from([-1, 0, 1, 315_360_000]),
    "ttl": st.sampled_from([None, 1, 315_360_000]),
    "page_size": st.integers(1, 10_000),
    "uids": st.lists(_valid_text, max_size=3),
    "services": st.lists(_valid_text, max_size=3),
    "states": st.lists(_valid_text, min_size=1, max_size=2),
}


class SpyBackend(MemoryBackend):
    """A memory backend that records every call reaching it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in BACKEND_METHODS:
            setattr(self, name, self._spy(name, getattr(self, name)))

    def _spy(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def spy(*args: Any) -> Any:
            self.calls.append((name, args))
            return await method(*args)

        return spy


def _plain(value: Any) -> bool:
    """True if ``value`` is built from exact str / int / None / list values only."""
    if value is None or type(value) in (str, int):
        return True
    if type(value) is list:
        return all(type(v) is str for v in value)
    return False


def _call(method: str, data: st.DataObject) -> tuple[list[Any], dict[str, Any], bool]:
    positional, keywords = METHODS[method]
    any_hostile = False
    args, kwargs = [], {}
    for kind in positional + keywords:
        if data.draw(st.booleans(), label=f"{kind} hostile"):
            value = data.draw(_hostile, label=kind)
            any_hostile = True
        else:
            value = data.draw(VALID[kind], label=kind)
        if kind in keywords:
            kwargs[KEYWORD_NAMES[kind]] = value
        else:
            args.append(value)
    return args, kwargs, any_hostile


async def _invoke(
    executor: StatefulExecutor, method: str, args: list[Any], kw: dict[str, Any]
) -> Any:
    if method == "pod_links":
        return [uid async for uid in executor.pod_links(*args, **kw)]
    return await getattr(executor, method)(*args, **kw)


@settings(max_examples=scale(400, 20_000), database=None)
@given(data=st.data(), method=st.sampled_from(sorted(METHODS)))
def test_hostile_arguments_raise_only_validation_error(data: st.DataObject, method: str) -> None:
    args, kwargs, _ = _call(method, data)
    backend = SpyBackend()
    executor = StatefulExecutor(backend)
    try:
        asyncio.run(_invoke(executor, method, args, kwargs))
    except ValidationError as exc:
        assert backend.calls == [], f"{method}: the backend was called before rejecting"
        assert isinstance(exc.argument, str) and exc.argument
    except Exception as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"{method}({args!r:.300}, {kwargs!r:.200}) raised {exc!r}")
    else:
        for name, call_args in backend.calls:
            for value in call_args:
                assert _plain(value), f"{method} passed {type(value).__name__} to {name}"
    finally:
        asyncio.run(executor.aclose())


@pytest.mark.parametrize("claimed", [str, int, float])
async def test_impostor_types_are_rejected_without_a_backend_call(claimed: type) -> None:
    """An object claiming another class through ``__class__`` passes `isinstance`."""
    fake: Any = Impostor(claimed)
    backend = SpyBackend()
    executor = StatefulExecutor(backend)
    for args in (
        (fake, "u", "svc"),
        ("ns", fake, "svc"),
    ):
        with pytest.raises(ValidationError):
            await executor.get_linked_pod(*args)
    with pytest.raises(ValidationError):
        await executor.set_linked_pod("ns", "u", "svc", fake, -1)
    with pytest.raises(ValidationError):
        await executor.set_linked_pod("ns", "u", "svc", 1, fake)
    with pytest.raises(ValidationError):
        await executor.set_service_state("ns", "svc", 1, "ready", ttl_seconds=fake)
    with pytest.raises(ValidationError):
        await executor.batch_get_linked_pod("ns", [fake], "svc")
    assert backend.calls == []
    await executor.aclose()


_seconds = (
    _hostile
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, 5e-324, 2**1024])
    | st.just(float).map(Impostor)  # fresh each time: Hypothesis must not hash it
)


@settings(max_examples=scale(200, 5_000), database=None)
@given(timeout=_seconds | st.none(), close_timeout=_seconds)
def test_hostile_executor_settings_raise_only_validation_error(
    timeout: Any, close_timeout: Any
) -> None:
    backend = SpyBackend()
    try:
        executor = StatefulExecutor(backend, timeout=timeout, close_timeout=close_timeout)
    except ValidationError as exc:
        assert exc.argument in ("timeout", "close_timeout")
    except Exception as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(
            f"StatefulExecutor(timeout={timeout!r}, close_timeout={close_timeout!r}): {exc!r}"
        )
    else:
        assert executor.timeout is None or 0 < executor.timeout < float("inf")
        asyncio.run(executor.aclose())
    assert backend.calls == []
