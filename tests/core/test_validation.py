"""Input rules: every argument of every operation, every rule, checked before any I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import stateful
from stateful import ValidationError
from stateful.backend import InstantLinks
from stateful.backends.memory import MemoryBackend
from stateful.validation import MAX_NAMESPACE, MAX_SERVICE_NAME, MAX_STATE, MAX_UID


class SpyBackend(MemoryBackend):
    """Records every call that reaches the backend."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if (
            not name.startswith("_")
            and callable(attribute)
            and name not in ("is_unavailable", "instant_links")
        ):
            super().__getattribute__("calls").append(name)
        return attribute

    def instant_links(self) -> InstantLinks | None:
        # The executor's fast path calls these plain functions instead of the
        # coroutines: record them too.
        links = super().instant_links()
        assert links is not None

        def recorded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any) -> Any:
                self.calls.append(name)
                return function(*args)

            return call

        return InstantLinks(
            get_linked_pod=recorded("get_linked_pod", links.get_linked_pod),
            set_linked_pod=recorded("set_linked_pod", links.set_linked_pod),
        )


@pytest.fixture
def spy() -> SpyBackend:
    return SpyBackend()


@pytest.fixture
def ex(spy: SpyBackend) -> stateful.StatefulExecutor:
    return stateful.StatefulExecutor(spy)


# name → (valid positional arguments, argument names)
OPERATIONS: dict[str, tuple[tuple[Any, ...], tuple[str, ...]]] = {
    "set_service_state": (
        ("ns", "svc", 1, "ready"),
        ("namespace", "service_name", "pod_id", "state"),
    ),
    "get_service_state": (("ns", "svc"), ("namespace", "service_name")),
    "set_workload_state": (("ns", "svc", "stable"), ("namespace", "service_name", "state")),
    "get_workload_state": (("ns", ["svc"]), ("namespace", "service_names")),
    "set_linked_pod": (
        ("ns", "u", "svc", 1, -1),
        ("namespace", "uid", "service_name", "pod_id", "persist_seconds"),
    ),
    "try_set_linked_pod": (
        ("ns", "u", "svc", 1, -1),
        ("namespace", "uid", "service_name", "pod_id", "persist_seconds"),
    ),
    "set_linked_pod_if_absent": (
        ("ns", "u", "svc", 1, -1),
        ("namespace", "uid", "service_name", "pod_id", "persist_seconds"),
    ),
    "get_linked_pod": (("ns", "u", "svc"), ("namespace", "uid", "service_name")),
    "get_linked_pod_if_persist": (("ns", "u", "svc"), ("namespace", "uid", "service_name")),
    "batch_get_linked_pod": (("ns", ["u"], "svc"), ("namespace", "uids", "service_name")),
    "remove_linked_pod": (
        ("ns", "u", "svc", 0),
        ("namespace", "uid", "service_name", "persist_seconds"),
    ),
    "remove_linked_pod_with_id": (
        ("ns", "u", "svc", 0, 1),
        ("namespace", "uid", "service_name", "persist_seconds", "pod_id"),
    ),
    "get_link_service": (("ns", "u"), ("namespace", "uid")),
    "get_link_info": (("ns", "u", "svc"), ("namespace", "uid", "service_name")),
    "remove_service_state": (("ns", "svc", 1), ("namespace", "service_name", "pod_id")),
    "count_pod_links": (("ns", "svc"), ("namespace", "service_name")),
    "remove_pod_links": (
        ("ns", "svc", 1, 0),
        ("namespace", "service_name", "pod_id", "persist_seconds"),
    ),
    "place_linked_pod": (
        ("ns", "u", "svc", -1),
        ("namespace", "uid", "service_name", "persist_seconds"),
    ),
}
# The backend method an operation reaches, where its name differs.
BACKEND_METHOD = {"remove_pod_links": "remove_pod_links_page"}

STRING_LIMITS = {
    "namespace": MAX_NAMESPACE,
    "service_name": MAX_SERVICE_NAME,
    "uid": MAX_UID,
    "state": MAX_STATE,
}
SET_OPS = {"set_linked_pod", "try_set_linked_pod", "set_linked_pod_if_absent", "place_linked_pod"}

BAD_STRINGS: list[tuple[object, str]] = [
    ("", "empty"),
    ("a\x00b", "NUL"),
    ("bad\ud800", "lone surrogate"),
    (None, "None"),
    (b"bytes", "bytes"),
    (7, "int"),
]


def bad_values() -> Iterator[tuple[str, int, str, object, str]]:
    """(operation, argument index, argument name, bad value, why)."""
    for op, (_args, names) in OPERATIONS.items():
        for index, name in enumerate(names):
            if name in STRING_LIMITS:
                for value, why in BAD_STRINGS:
                    yield op, index, name, value, why
                yield op, index, name, "x" * (STRING_LIMITS[name] + 1), "too long"
            elif name == "pod_id":
                for value in (-1, 2**31, True, 1.0, "1", None):
                    yield op, index, name, value, repr(value)
            elif name == "persist_seconds":
                bad: tuple[object, ...] = (-2, 315_360_001, True, 1.5, "5", None)
                if op in SET_OPS:
                    bad += (0,)
                for value in bad:
                    yield op, index, name, value, repr(value)
            elif name in ("uids", "service_names"):
                element = "uids" if name == "uids" else "service_names"
                for value, why in (
                    ("svc", "bare str"),
                    (b"ab", "bytes"),
                    (None, "None"),
                    (5, "int"),
                    (["ok", ""], "empty element"),
                    (["ok", 3], "int element"),
                    (["ok", "a\x00"], "NUL element"),
                ):
                    yield op, index, element, value, why


CASES = list(bad_values())


@pytest.mark.parametrize(
    ("op", "index", "name", "value", "why"),
    CASES,
    ids=[f"{c[0]}-{c[2]}-{c[4]}" for c in CASES],
)
async def test_bad_argument_raises_validation_error_before_any_io(
    ex: stateful.StatefulExecutor,
    spy: SpyBackend,
    op: str,
    index: int,
    name: str,
    value: object,
    why: str,
) -> None:
    args = list(OPERATIONS[op][0])
    args[index] = value
    with pytest.raises(ValidationError) as caught:
        await getattr(ex, op)(*args)
    assert caught.value.argument.split("[")[0] == name
    assert isinstance(caught.value, ValueError)
    assert spy.calls == [], "the backend was called although the input was invalid"


@pytest.mark.parametrize("op", sorted(OPERATIONS))
async def test_valid_arguments_reach_the_backend(
    ex: stateful.StatefulExecutor, spy: SpyBackend, op: str
) -> None:
    await getattr(ex, op)(*OPERATIONS[op][0])
    assert BACKEND_METHOD.get(op, op) in spy.calls


@pytest.mark.parametrize("ttl", [0, -1, 315_360_001, True, 1.5, "5"])
async def test_bad_state_ttl_is_rejected(
    ex: stateful.StatefulExecutor, spy: SpyBackend, ttl: object
) -> None:
    with pytest.raises(ValidationError) as caught:
        await ex.set_service_state("ns", "svc", 1, "ready", ttl_seconds=ttl)  # type: ignore[arg-type]
    assert caught.value.argument == "ttl_seconds"
    assert spy.calls == []


@pytest.mark.parametrize(
    ("states", "argument"),
    [("ready", "states"), (["ready", ""], "states[1]"), ([None], "states[0]"), (5, "states")],
)
async def test_bad_placement_states_are_rejected(
    ex: stateful.StatefulExecutor, spy: SpyBackend, states: object, argument: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await ex.place_linked_pod("ns", "u", "svc", -1, states=states)  # type: ignore[arg-type]
    assert caught.value.argument == argument
    assert spy.calls == []


@pytest.mark.parametrize(
    ("args", "page_size", "argument"),
    [
        (("", "svc", 1), 10, "namespace"),
        (("ns", "svc", -1), 10, "pod_id"),
        (("ns", "svc", 1), 0, "page_size"),
        (("ns", "svc", 1), 10_001, "page_size"),
        (("ns", "svc", 1), True, "page_size"),
    ],
)
def test_pod_links_checks_its_arguments_when_called(
    ex: stateful.StatefulExecutor,
    spy: SpyBackend,
    args: tuple[str, str, int],
    page_size: int,
    argument: str,
) -> None:
    # Before iterating: the error comes from the call itself, not the first `async for` step.
    with pytest.raises(ValidationError) as caught:
        ex.pod_links(*args, page_size=page_size)
    assert caught.value.argument == argument
    assert spy.calls == []


async def test_str_and_int_subclasses_are_read_through_their_base_type(
    ex: stateful.StatefulExecutor, spy: SpyBackend
) -> None:
    class HostileStr(str):
        def __len__(self) -> int:
            raise RuntimeError("len")

        def __hash__(self) -> int:
            raise RuntimeError("hash")

        def __str__(self) -> str:
            raise RuntimeError("str")

    class HostileInt(int):
        def __index__(self) -> int:
            raise RuntimeError("index")

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("eq")

        __hash__ = int.__hash__

    await ex.set_linked_pod(HostileStr("ns"), HostileStr("u"), "svc", HostileInt(3), -1)
    assert await ex.get_linked_pod("ns", "u", "svc") == 3
    assert await ex.batch_get_linked_pod("ns", [HostileStr("u")], "svc") == {3: ["u"]}


async def test_an_iterable_that_fails_is_a_validation_error(
    ex: stateful.StatefulExecutor, spy: SpyBackend
) -> None:
    def exploding() -> Iterator[str]:
        yield "a"
        raise RuntimeError("boom")

    with pytest.raises(ValidationError, match="uids: could not be iterated"):
        await ex.batch_get_linked_pod("ns", exploding(), "svc")
    assert spy.calls == []


@pytest.mark.parametrize("name", sorted(STRING_LIMITS))
async def test_string_at_its_length_limit_is_accepted(
    ex: stateful.StatefulExecutor, name: str
) -> None:
    value = "é" * STRING_LIMITS[name]
    if name == "state":
        await ex.set_workload_state("ns", "svc", value)
        assert await ex.get_workload_state("ns", ["svc"]) == {"svc": value}
        return
    ns, uid, svc = "ns", "u", "svc"
    ns, uid, svc = (
        value if name == "namespace" else ns,
        value if name == "uid" else uid,
        value if name == "service_name" else svc,
    )
    assert await ex.set_linked_pod(ns, uid, svc, 2**31 - 1, 315_360_000) is None
    assert await ex.get_linked_pod(ns, uid, svc) == 2**31 - 1


async def test_error_names_the_argument_and_the_rule(ex: stateful.StatefulExecutor) -> None:
    with pytest.raises(ValidationError, match=r"^uid: must be at most 1024 characters, got 1025$"):
        await ex.get_linked_pod("ns", "u" * 1025, "svc")
    with pytest.raises(ValidationError, match=r"^uids\[1\]: must not be empty$"):
        await ex.batch_get_linked_pod("ns", ["a", ""], "svc")


async def test_any_iterable_is_accepted_and_empty_gives_empty_without_io(
    ex: stateful.StatefulExecutor, spy: SpyBackend
) -> None:
    assert await ex.batch_get_linked_pod("ns", iter(()), "svc") == {}
    assert await ex.get_workload_state("ns", ()) == {}
    assert spy.calls == []
    await ex.set_linked_pod("ns", "a", "svc", 1, -1)
    assert await ex.batch_get_linked_pod("ns", (u for u in ["a", "b"]), "svc") == {1: ["a"]}


async def test_validation_happens_even_with_an_empty_list_following_a_bad_namespace(
    ex: stateful.StatefulExecutor,
) -> None:
    with pytest.raises(ValidationError, match="namespace"):
        await ex.batch_get_linked_pod("", [], "svc")
    with pytest.raises(ValidationError, match="service_name"):
        await ex.batch_get_linked_pod("ns", [], "")
