"""Histories of concurrent calls: what each client asked, when, and what it got back.

A `HistoryRecorder` wraps any `stateful.StatefulExecutor` and records every
call it forwards as an `Operation`: the invocation and response instants on
``time.monotonic_ns()`` (CLOCK_MONOTONIC, one clock shared by every process of
the machine, so histories recorded by several processes can be merged) and
how the call ended. `stateful.testing.linearizability.check_history` then
decides whether some sequential order of the operations explains every answer.

Outcomes:

* ``"ok"``: the call returned ``result``;
* ``"error"``: the call certainly did not take effect (`ValidationError`,
  `PoolExhausted`: nothing was sent);
* ``"maybe"``: the outcome is unknown (cancelled, timed out,
  `BackendUnavailable`, any other `BackendError`); the checker may place it
  anywhere after its invocation, or leave it out.

A `History` crosses process boundaries as JSON (`History.to_json`,
`History.from_json`); every value the executor returns survives the trip with
its type (tuples stay tuples, integer dictionary keys stay integers).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from stateful.clock import Clock
from stateful.errors import PoolExhausted, StatefulError, ValidationError
from stateful.executor import StatefulExecutor
from stateful.records import LinkInfo

Outcome = Literal["ok", "error", "maybe"]

#: Operations on one link, whose first three arguments are (namespace, uid, service).
LINK_OPERATIONS = frozenset(
    {
        "set_linked_pod",
        "try_set_linked_pod",
        "set_linked_pod_if_absent",
        "get_linked_pod",
        "get_linked_pod_if_persist",
        "remove_linked_pod",
        "remove_linked_pod_with_id",
        "get_link_info",
        "place_linked_pod",
    }
)

#: Operations that change nothing: the checker drops them when their outcome is unknown.
READ_OPERATIONS = frozenset(
    {
        "get_linked_pod",
        "get_linked_pod_if_persist",
        "get_link_info",
        "batch_get_linked_pod",
        "get_link_service",
        "pod_links",
        "count_pod_links",
        "get_service_state",
        "get_workload_state",
    }
)


@dataclass(frozen=True)
class Operation:
    """One call of one client: what was asked, when, and how it ended.

    ``invoked_ns`` and ``returned_ns`` are ``time.monotonic_ns()`` readings;
    ``returned_ns`` is None when the call's effect has no known end: cancelled,
    timed out or failed calls ("maybe"), which may still take effect later.
    ``result`` is the returned value for ``"ok"``, else None; ``error`` names
    the exception type for ``"error"`` and ``"maybe"``.
    """

    client: str
    name: str
    args: tuple[Any, ...]
    invoked_ns: int
    returned_ns: int | None
    outcome: Outcome
    result: Any = None
    error: str | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()
    #: The store's clock (ms) when the call was made, if the recorder was given it.
    now_ms: int | None = None

    @property
    def key(self) -> tuple[str, str, str] | None:
        """The link ``(namespace, uid, service)`` a single-link operation acts on, else None."""
        if self.name in LINK_OPERATIONS:
            return (self.args[0], self.args[1], self.args[2])
        return None

    @property
    def is_read(self) -> bool:
        """True if the operation changes nothing in the store."""
        return self.name in READ_OPERATIONS

    def describe(self) -> str:
        """One line: ``client: name(args) -> answer``."""
        arguments = ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs])
        if self.outcome == "ok":
            answer = repr(self.result)
        elif self.outcome == "error":
            answer = f"error {self.error} (did not happen)"
        else:
            answer = f"{self.error or 'unknown'} (may have happened)"
        return f"{self.client}: {self.name}({arguments}) -> {answer}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (see `History.to_json`)."""
        return {
            "client": self.client,
            "name": self.name,
            "args": _encode(self.args),
            "kwargs": _encode(self.kwargs),
            "invoked_ns": self.invoked_ns,
            "returned_ns": self.returned_ns,
            "outcome": self.outcome,
            "result": _encode(self.result),
            "error": self.error,
            "now_ms": self.now_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Operation:
        """Rebuild an operation from `to_json`'s dictionary."""
        return cls(
            client=data["client"],
            name=data["name"],
            args=_decode(data["args"]),
            kwargs=_decode(data["kwargs"]),
            invoked_ns=data["invoked_ns"],
            returned_ns=data["returned_ns"],
            outcome=data["outcome"],
            result=_decode(data["result"]),
            error=data["error"],
            now_ms=data.get("now_ms"),
        )


@dataclass
class History:
    """The operations of one or more clients, in no particular order."""

    operations: list[Operation] = field(default_factory=list)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __len__(self) -> int:
        return len(self.operations)

    def append(self, operation: Operation) -> None:
        """Add one operation."""
        self.operations.append(operation)

    @classmethod
    def merge(cls, histories: Iterable[History]) -> History:
        """One history holding the operations of all ``histories`` (same clock assumed)."""
        merged = cls()
        for history in histories:
            merged.operations.extend(history.operations)
        return merged

    def to_json(self) -> str:
        """Serialise to a JSON string (for a child process to send its history back)."""
        return json.dumps([op.to_json() for op in self.operations], ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Parse `to_json`'s output."""
        return cls([Operation.from_json(item) for item in json.loads(text)])

    def settled(self, at_ns: int) -> History:
        """Return a copy where every call of unknown outcome ended by ``at_ns``.

        For a test that knows no call was still running at ``at_ns`` (every
        task done, the executor idle): it bounds where the checker may place
        cancelled and timed-out calls, which keeps the search small.
        """
        return History(
            [
                replace(op, returned_ns=at_ns)
                if op.outcome == "maybe" and op.returned_ns is None
                else op
                for op in self.operations
            ]
        )

    def counts(self) -> dict[str, int]:
        """How many operations ended in each outcome."""
        counts = {"ok": 0, "error": 0, "maybe": 0}
        for op in self.operations:
            counts[op.outcome] += 1
        return counts


class HistoryRecorder:
    """Forwards calls to an executor and records each one in `history`.

    ``await recorder.call("set_linked_pod", ns, uid, svc, pod, ttl)`` returns
    or raises exactly what the executor does. ``pod_links`` (an async
    iterator) is collected into a list of uids. Several recorders may share
    one `History` (pass ``history=``), one per client. Given the store's
    ``clock`` (a `ManualClock` moved only between rounds), each operation
    records the time it was made at, so one history may span clock moves.
    """

    def __init__(
        self,
        executor: StatefulExecutor,
        *,
        client: str,
        history: History | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Record the calls made through ``executor`` under the name ``client``."""
        self.executor = executor
        self.client = client
        self.history = history if history is not None else History()
        self.clock = clock

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``executor.<name>(*args, **kwargs)`` and record the call."""
        method = getattr(self.executor, name)
        now = None if self.clock is None else self.clock.now_ms()
        invoked = time.monotonic_ns()
        returned: int | None = None
        try:
            if name == "pod_links":
                result: Any = [uid async for uid in method(*args, **kwargs)]
            else:
                result = await method(*args, **kwargs)
            returned = time.monotonic_ns()
        except asyncio.CancelledError:
            self._record(now, name, args, kwargs, invoked, None, "maybe", None, "CancelledError")
            raise
        except (ValidationError, PoolExhausted) as exc:
            self._record(
                now,
                name,
                args,
                kwargs,
                invoked,
                time.monotonic_ns(),
                "error",
                None,
                type(exc).__name__,
            )
            raise
        except (StatefulError, TimeoutError) as exc:
            # The call may still take effect later (a shielded call finishing in
            # the background, a command already sent): no end to its window.
            self._record(now, name, args, kwargs, invoked, None, "maybe", None, type(exc).__name__)
            raise
        except BaseException as exc:
            # Not the executor's contract (a driver error escaped): the call's
            # effect is unknown, and the test will see the exception anyway.
            self._record(now, name, args, kwargs, invoked, None, "maybe", None, type(exc).__name__)
            raise
        self._record(now, name, args, kwargs, invoked, returned, "ok", result, None)
        return result

    def _record(
        self,
        now: int | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invoked: int,
        returned: int | None,
        outcome: Outcome,
        result: Any,
        error: str | None,
    ) -> None:
        self.history.append(
            Operation(
                client=self.client,
                name=name,
                args=tuple(args),
                kwargs=tuple(sorted(kwargs.items())),
                invoked_ns=invoked,
                returned_ns=returned,
                outcome=outcome,
                result=result,
                error=error,
                now_ms=now,
            )
        )


# -- typed JSON ----------------------------------------------------------------------
# JSON has no tuples and only string keys; the executor returns both. Containers
# are tagged so that the round trip gives back values that compare equal.


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, LinkInfo):
        return {
            "LinkInfo": [
                value.namespace,
                value.uid,
                value.service_name,
                value.pod_id,
                value.expires_at_ms,
                value.updated_at_ms,
            ]
        }
    if isinstance(value, (set, frozenset)):
        return {"list": [_encode(v) for v in sorted(value, key=repr)]}
    raise TypeError(f"cannot record a value of type {type(value).__name__} in a history")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, body),) = value.items()
    if tag == "tuple":
        return tuple(_decode(v) for v in body)
    if tag == "list":
        return [_decode(v) for v in body]
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in body}
    if tag == "LinkInfo":
        return LinkInfo(*body)
    raise ValueError(f"unknown tag {tag!r} in a recorded history")
