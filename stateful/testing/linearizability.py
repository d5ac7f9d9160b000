"""Linearizability checker: find one sequential order that explains a concurrent history.

`check_history` takes a `History` recorded while a store's clock was held
still at ``now_ms`` and searches, link by link, for a linearization: an order
of the operations that respects real time (an operation that returned before
another was invoked comes first) and in which the reference model
(`stateful.testing.ReferenceModel`, the contract as code) gives every answer
the store gave. The search is Wing & Gong's, with Lowe's memoisation: a
configuration (which operations are linearized, the link's model state) is
explored once.

Links of different ``(namespace, uid, service)`` keys are independent, so
each key is checked on its own (linearizability is compositional).
Operations on several links are split into per-key reads that must all hold:

* ``batch_get_linked_pod``: one read per uid, each within the call's
  interval (a batch is atomic per link; Redis Cluster splits it in chunks);
* ``get_link_service``: one "permanent link's pod" read per service the
  history touches for that uid; a service nobody wrote is a violation;
* ``pod_links``: the SPEC's weaker promise, exactly: a yielded uid had its
  link on the pod at some instant of the iteration, a uid not yielded was off
  the pod at some instant, and no uid comes twice;
* ``remove_pod_links``: per link, a removal that may or may not have happened.

Pod states (``set_service_state`` with or without ``ttl_seconds``,
``remove_service_state``) are per ``(namespace, service, pod)`` keys, and a
``get_service_state`` is one read per pod the history touches.
``count_pod_links`` is only exact when no write runs concurrently; it is not
checked here (compare it at a quiet moment instead); neither are workload
states.

Outcomes: ``"ok"`` operations must be placed and answer as recorded;
``"maybe"`` writes may be placed anywhere after their invocation or left out;
``"maybe"`` reads and ``"error"`` operations are dropped. A check that runs
out of its time budget says ``"unknown"``, never ``"ok"``.

Every history is assumed to start from an empty store (fresh namespace).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from stateful.testing.history import History, HistoryRecorder, Operation, Outcome
from stateful.testing.model import ReferenceModel

__all__ = [
    "CheckResult",
    "History",
    "HistoryRecorder",
    "Operation",
    "Outcome",
    "Verdict",
    "check_history",
]

Verdict = Literal["ok", "violation", "unknown"]
Key = tuple[Any, ...]
# A link's model state: the model's entries for that key, as (dictionary name, value) pairs.
State = tuple[tuple[str, Any], ...]

_NEVER = float("inf")
_ANY = object()  # the expected answer of an operation whose answer was not seen
MAX_REPORT_LINES = 60


@dataclass(frozen=True)
class CheckResult:
    """The verdict of `check_history`, with what was checked.

    ``report`` is empty for ``"ok"``; for a violation its first line names
    the key and the operation that cannot be placed (arguments, the store's
    answer, what the model allows), followed by a minimal failing sub-history.
    """

    verdict: Verdict
    report: str = ""
    keys: int = 0
    operations: int = 0
    key: Key | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True only if the history was proven linearizable."""
        return self.verdict == "ok"

    def __str__(self) -> str:
        head = f"{self.verdict}: {self.operations} operations on {self.keys} keys"
        return f"{head}\n{self.report}" if self.report else head


@dataclass
class _Step:
    """One per-key obligation: apply ``call`` to the model and check the answer."""

    origin: Operation
    invoked: int
    returned: float  # _NEVER for operations whose answer was not seen
    required: bool
    now: int  # the store's clock for this operation (ms)
    name: str  # the model method
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: Any = _ANY
    # Instead of equality with ``expected``: a predicate over the model's answer.
    predicate: Callable[[Any], bool] | None = None
    note: str = ""  # how a multi-key operation turned into this step
    # More model calls the store may have made instead (a placement whose pod is unknown).
    alternatives: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def describe(self) -> str:
        text = self.origin.describe()
        return f"{text}  [{self.note}]" if self.note else text


class _Violation(Exception):
    """A history that no per-key split can explain (e.g. a uid yielded twice)."""

    def __init__(self, key: Key | None, message: str) -> None:
        super().__init__(message)
        self.key = key


class _OutOfTime(Exception):
    pass


def check_history(
    history: History | Iterable[Operation],
    *,
    now_ms: int | None = None,
    budget_s: float = 10.0,
    minimise: bool = True,
) -> CheckResult:
    """Decide whether ``history`` is linearizable, with the store's clock at ``now_ms``.

    Operations recorded with their own clock reading (`Operation.now_ms`, a
    recorder given the store's `ManualClock`) use it instead: one history
    may then span clock moves made while no call was running.

    ``budget_s`` bounds the whole check; when it runs out the verdict is
    ``"unknown"``. With ``minimise`` a violation's report carries the key's
    failing sub-history without the reads that do not matter to it.
    """
    started = time.monotonic()
    deadline = started + budget_s
    operations = list(history)
    try:
        steps = _split(operations, now_ms)
    except _Violation as exc:
        return CheckResult(
            "violation",
            f"key {exc.key!r}: {exc}",
            keys=0,
            operations=len(operations),
            key=exc.key,
            elapsed_s=time.monotonic() - started,
        )
    unknown: CheckResult | None = None
    for key, key_steps in steps.items():
        try:
            failure = _search(key, key_steps, deadline)
        except _OutOfTime:
            # Other keys may still show a violation (a definite answer): go on.
            unknown = unknown or CheckResult(
                "unknown",
                f"time budget of {budget_s} s ran out on key {key!r} "
                f"({len(key_steps)} steps); nothing was proven",
                keys=len(steps),
                operations=len(operations),
                key=key,
            )
            continue
        if failure is not None:
            report, stuck = failure
            if minimise:
                report += "\n" + _minimal_report(key, key_steps, stuck, deadline)
            return CheckResult(
                "violation",
                report,
                keys=len(steps),
                operations=len(operations),
                key=key,
                elapsed_s=time.monotonic() - started,
            )
    if unknown is not None:
        return replace(unknown, elapsed_s=time.monotonic() - started)
    return CheckResult(
        "ok", keys=len(steps), operations=len(operations), elapsed_s=time.monotonic() - started
    )


# -- splitting a history into per-key steps ---------------------------------------------


def _split(operations: list[Operation], now_ms: int | None) -> dict[Key, list[_Step]]:
    """Turn the history into per-key steps, dropping what cannot matter."""
    steps: dict[Key, list[_Step]] = defaultdict(list)
    live_ops = [op for op in operations if op.outcome != "error"]
    # Every link key the history touches, per (namespace, uid) and per (namespace, service).
    keys: set[tuple[str, str, str]] = set()
    for op in live_ops:
        if op.key is not None:
            keys.add(op.key)
        elif op.name == "batch_get_linked_pod":
            keys.update((op.args[0], uid, op.args[2]) for uid in op.args[1])
    # Pod states are keyed (namespace, service, pod): every pod the history sets or removes.
    pods_with_state: dict[tuple[str, str], set[int]] = defaultdict(set)
    for op in live_ops:
        if op.name in ("set_service_state", "remove_service_state"):
            pods_with_state[(op.args[0], op.args[1])].add(op.args[2])
    by_uid: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_service: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ns, uid, svc in keys:
        by_uid[(ns, uid)].add(svc)
        by_service[(ns, svc)].add(uid)
    # Pods each key's operations name: what a placement of unknown outcome may have chosen.
    pods_of: dict[Key, set[int]] = defaultdict(set)
    for op in live_ops:
        if op.key is not None and op.outcome == "ok":
            pods_of[op.key].update(_pods_in(op))

    for op in live_ops:
        if op.outcome == "maybe" and op.is_read:
            continue  # an unseen answer of a read constrains nothing
        invoked = op.invoked_ns
        # An unknown outcome's window ends where the test bounded it (History.settled).
        returned: float = _NEVER if op.returned_ns is None else op.returned_ns
        required = op.outcome == "ok"
        now = op.now_ms if op.now_ms is not None else now_ms
        if now is None:
            raise ValueError(f"{op.describe()}: no clock reading; pass now_ms=")
        base: dict[str, Any] = {
            "origin": op,
            "invoked": invoked,
            "returned": returned,
            "required": required,
            "now": now,
        }
        expected = op.result if required else _ANY
        if op.name == "place_linked_pod":
            steps[op.key].append(_placement_step(op, base, pods_of[op.key]))  # type: ignore[index]
        elif op.key is not None:
            steps[op.key].append(
                _Step(**base, name=op.name, args=op.args, kwargs=dict(op.kwargs), expected=expected)
            )
        elif op.name == "batch_get_linked_pod":
            _split_batch(op, base, steps)
        elif op.name == "get_link_service":
            _split_link_service(op, base, by_uid[(op.args[0], op.args[1])], steps)
        elif op.name == "pod_links":
            _split_pod_links(op, base, by_service[(op.args[0], op.args[1])], steps)
        elif op.name == "remove_pod_links":
            ns, svc, pod, persist = op.args[:4]
            for uid in sorted(by_service[(ns, svc)]):
                steps[(ns, uid, svc)].append(
                    _Step(
                        **{**base, "required": False},
                        name="remove_linked_pod_with_id",
                        args=(ns, uid, svc, persist, pod),
                        note=f"one link's removal by remove_pod_links, uid {uid!r}",
                    )
                )
        elif op.name in ("set_service_state", "remove_service_state"):
            state_key = (op.args[0], op.args[1], op.args[2])
            steps[state_key].append(
                _Step(**base, name=op.name, args=op.args, kwargs=dict(op.kwargs), expected=expected)
            )
        elif op.name == "get_service_state":
            _split_service_state(op, base, pods_with_state[(op.args[0], op.args[1])], steps)
        # Workload states and count_pod_links are not checked here.
    return dict(steps)


def _split_service_state(
    op: Operation, base: dict[str, Any], pods: set[int], steps: dict[Key, list[_Step]]
) -> None:
    """Split a read of a service's pod states into one read per pod the history touches."""
    ns, svc = op.args[:2]
    answer: dict[int, str] = op.result
    stray = set(answer) - pods
    if stray:
        pod = min(stray)
        raise _Violation((ns, svc, pod), f"{op.describe()}: pod {pod} never had a state set")
    for pod in sorted(pods):

        def holds(current: dict[int, str], pod: int = pod) -> bool:
            return current.get(pod) == answer.get(pod)

        steps[(ns, svc, pod)].append(
            _Step(
                **base,
                name="get_service_state",
                args=(ns, svc),
                predicate=holds,
                note=f"get_service_state's answer for pod {pod}: {answer.get(pod)!r}",
            )
        )


def _pods_in(op: Operation) -> set[int]:
    pods = {a for a in op.args[3:] if isinstance(a, int) and not isinstance(a, bool) and a >= 0}
    result = op.result
    if isinstance(result, tuple):
        result = result[1]
    if isinstance(result, int) and not isinstance(result, bool):
        pods.add(result)
    return pods


def _placement_step(op: Operation, base: dict[str, Any], pods: set[int]) -> _Step:
    ns, uid, svc, persist = op.args[:4]
    if op.outcome == "ok":
        if op.result is None:
            return _Step(
                **base,
                name="get_linked_pod",
                args=(ns, uid, svc),
                expected=None,
                note="placement found no pod: there was no live link",
            )
        return _Step(
            **base,
            name="set_linked_pod_if_absent",
            args=(ns, uid, svc, op.result, persist),
            expected=op.result,
            note="placement: keep the live link or link to the pod returned",
        )
    # Unknown outcome: it kept/refreshed a live link, or linked to some pod we
    # can only guess from the key's other answers; every guess is tried.
    choices = sorted(pods) or [0]
    first, *rest = choices
    return _Step(
        **base,
        name="set_linked_pod_if_absent",
        args=(ns, uid, svc, first, persist),
        alternatives=tuple(
            ("set_linked_pod_if_absent", (ns, uid, svc, pod, persist)) for pod in rest
        ),
        note="placement of unknown outcome",
    )


def _split_batch(op: Operation, base: dict[str, Any], steps: dict[Key, list[_Step]]) -> None:
    ns, uids, svc = op.args[:3]
    answer: dict[int, list[str]] = op.result
    where: dict[str, int] = {}
    for pod, members in answer.items():
        for uid in members:
            if uid in where:
                raise _Violation((ns, uid, svc), f"{op.describe()}: uid {uid!r} came twice")
            where[uid] = pod
    unique = list(dict.fromkeys(uids))
    stray = set(where) - set(unique)
    if stray:
        raise _Violation((ns, sorted(stray)[0], svc), f"{op.describe()}: uids not asked {stray!r}")
    for pod, members in answer.items():
        order = [u for u in unique if u in set(members)]
        if members != order:
            raise _Violation(
                (ns, members[0], svc), f"{op.describe()}: pod {pod} not in input order"
            )
    for uid in unique:
        steps[(ns, uid, svc)].append(
            _Step(
                **base,
                name="get_linked_pod",
                args=(ns, uid, svc),
                expected=where.get(uid),
                note=f"batch_get_linked_pod's answer for uid {uid!r}: {where.get(uid)!r}",
            )
        )


def _split_link_service(
    op: Operation, base: dict[str, Any], services: set[str], steps: dict[Key, list[_Step]]
) -> None:
    ns, uid = op.args[:2]
    answer: dict[str, int] = op.result
    stray = set(answer) - services
    if stray:
        svc = sorted(stray)[0]
        raise _Violation(
            (ns, uid, svc),
            f"{op.describe()}: service {svc!r} was never linked by this history",
        )
    for svc in sorted(services):
        steps[(ns, uid, svc)].append(
            _Step(
                **base,
                name="get_linked_pod_if_persist",
                args=(ns, uid, svc),
                expected=answer.get(svc),
                note=f"get_link_service's answer for service {svc!r}: {answer.get(svc)!r}",
            )
        )


def _split_pod_links(
    op: Operation, base: dict[str, Any], uids: set[str], steps: dict[Key, list[_Step]]
) -> None:
    ns, svc, pod = op.args[:3]
    answer: list[str] = op.result
    if len(set(answer)) != len(answer):
        twice = next(u for u in answer if answer.count(u) > 1)
        raise _Violation((ns, twice, svc), f"{op.describe()}: uid {twice!r} came twice")
    stray = set(answer) - uids
    if stray:
        uid = sorted(stray)[0]
        raise _Violation((ns, uid, svc), f"{op.describe()}: uid {uid!r} was never linked")
    yielded = set(answer)
    for uid in sorted(uids):
        on_pod = uid in yielded

        def holds(current: Any, pod: int = pod, on_pod: bool = on_pod) -> bool:
            return bool((current == pod) == on_pod)

        steps[(ns, uid, svc)].append(
            _Step(
                **base,
                name="get_linked_pod",
                args=(ns, uid, svc),
                predicate=holds,
                note=(
                    f"pod_links yielded {uid!r}: it was on pod {pod} at some instant"
                    if on_pod
                    else f"pod_links left {uid!r} out: it was off pod {pod} at some instant"
                ),
            )
        )


# -- the search ---------------------------------------------------------------------------


class _SettableClock:
    """The model's clock: set to each operation's time before the model runs it."""

    value = 0

    def now_ms(self) -> int:
        return self.value


class _KeyModel:
    """The reference model narrowed to one key, with states that can be saved and restored."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.clock = _SettableClock()
        self.model = ReferenceModel(self.clock)
        self.tables = [name for name, value in vars(self.model).items() if isinstance(value, dict)]

    def load(self, state: State) -> None:
        for name in self.tables:
            getattr(self.model, name).clear()
        for name, value in state:
            getattr(self.model, name)[self.key] = value

    def save(self) -> State:
        saved = []
        for name in self.tables:
            table = getattr(self.model, name)
            if self.key in table:
                saved.append((name, table[self.key]))
        return tuple(saved)

    def run(self, step: _Step, name: str, args: tuple[Any, ...]) -> Any:
        self.clock.value = step.now
        return getattr(self.model, name)(*args, **step.kwargs)


def _transitions(model: _KeyModel, step: _Step, state: State) -> list[State]:
    """Return the states the link may be in after ``step`` from ``state`` (none: impossible)."""
    outcomes = []
    for name, args in ((step.name, step.args), *step.alternatives):
        model.load(state)
        answer = model.run(step, name, args)
        if step.predicate is not None:
            fits = step.predicate(answer)
        else:
            fits = step.expected is _ANY or answer == step.expected
        if fits:
            outcomes.append(model.save())
    return outcomes


def _search(key: Key, steps: list[_Step], deadline: float) -> tuple[str, _Step] | None:
    """Return None if the key's steps linearize, else a report's first line and the stuck step."""
    steps = _prune(steps)
    if not steps:
        return None
    steps = sorted(steps, key=lambda s: s.invoked)
    n = len(steps)
    required_mask = 0
    for i, step in enumerate(steps):
        if step.required:
            required_mask |= 1 << i
    by_return = sorted((s.returned, i) for i, s in enumerate(steps) if s.required)
    # Placing step j puts its instant after j's invocation: every optional step
    # whose window closed before that can no longer come, and is left out.
    optional = sorted((s.returned, i) for i, s in enumerate(steps) if not s.required)
    closing = [r for r, _ in optional]
    prefix = [0]
    for _, i in optional:
        prefix.append(prefix[-1] | 1 << i)
    closed_before = [prefix[bisect_left(closing, step.invoked)] for step in steps]
    model = _KeyModel(key)
    cache: dict[tuple[int, State], list[State]] = {}
    seen: set[tuple[int, State]] = set()
    # (mask, state, lo, ri): steps[:lo] and the required steps by_return[:ri]
    # are all in mask; both only grow along a path, so scans start there.
    stack: list[tuple[int, State, int, int]] = [(0, (), 0, 0)]
    best: tuple[int, int, State] = (-1, 0, ())
    visits = 0
    while stack:
        mask, state, lo, ri = stack.pop()
        while ri < len(by_return) and mask >> by_return[ri][1] & 1:
            ri += 1
        if ri == len(by_return):
            return None  # every answered call is placed
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        visits += 1
        if visits % 256 == 0 and time.monotonic() > deadline:
            raise _OutOfTime
        placed = (mask & required_mask).bit_count()
        if placed > best[0]:
            best = (placed, mask, state)
        while lo < n and mask >> lo & 1:
            lo += 1
        # An operation may come next only if no pending one returned before it was invoked.
        min_return = by_return[ri][0]
        for i in range(lo, n):
            step = steps[i]
            if step.invoked > min_return:
                break
            if mask >> i & 1:
                continue
            memo = (i, state)
            if memo not in cache:
                cache[memo] = _transitions(model, step, state)
            for after in cache[memo]:
                stack.append((mask | 1 << i | closed_before[i], after, lo, ri))
    return _first_line(key, steps, best[1], best[2], model)


def _prune(steps: list[_Step]) -> list[_Step]:
    """Drop unseen-outcome steps that cannot explain anything: invoked after every answer."""
    last_return = max((s.returned for s in steps if s.required), default=None)
    if last_return is None:
        return []
    return [s for s in steps if s.required or s.invoked <= last_return]


def _first_line(
    key: Key, steps: list[_Step], mask: int, state: State, model: _KeyModel
) -> tuple[str, _Step]:
    # The stuck operation: the pending one that returned first bounds every other choice.
    pending = [s for i, s in enumerate(steps) if s.required and not mask >> i & 1]
    stuck = min(pending, key=lambda s: s.returned)
    model.load(state)
    allows = model.run(stuck, stuck.name, stuck.args)
    placed = [s for i, s in enumerate(steps) if mask >> i & 1]
    after = f"after {len(placed)} operations placed" if placed else "on an empty store"
    line = (
        f"key {key!r}: cannot place {stuck.describe()}; "
        f"the model answers {allows!r} there ({after}; link state {_show(state)})"
    )
    return line, stuck


def _show(state: State) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in state) or "none"


def _minimal_report(key: Key, steps: list[_Step], stuck: _Step, deadline: float) -> str:
    """Return a smaller failing sub-history of the key's steps (within the budget).

    Greedy removal, one step at a time, keeping a removal if the rest still
    fails; only steps that cannot explain an answer are tried: reads other
    than the stuck one, and steps invoked after the stuck one returned.
    Writes before it stay, since dropping the write that explains some
    answer would only swap one failure for another.
    """
    kept = list(steps)
    complete = True
    for step in sorted(steps, key=lambda s: s.invoked, reverse=True):
        if step is stuck or not (step.origin.is_read or step.invoked > stuck.returned):
            continue
        if time.monotonic() > deadline:
            complete = False
            break
        trial = [s for s in kept if s is not step]
        try:
            if _search(key, trial, deadline) is not None:
                kept = trial
        except _OutOfTime:
            complete = False
            break
    kept.sort(key=lambda s: s.invoked)
    origin = min(s.invoked for s in kept)
    title = "failing sub-history" + ("" if complete else " (budget ran out while reducing)")
    lines = [f"{title}, {len(kept)} operations (µs from the first invocation):"]
    shown = kept if len(kept) <= MAX_REPORT_LINES else kept[-MAX_REPORT_LINES:]
    if len(shown) < len(kept):
        lines.append(f"  ... {len(kept) - len(shown)} earlier operations left out ...")
    for s in shown:
        end = "never" if s.returned == _NEVER else f"{(s.returned - origin) / 1000:.0f}"
        mark = "  <- cannot be placed" if s is stuck else ""
        lines.append(f"  [{(s.invoked - origin) / 1000:.0f} .. {end}] {s.describe()}{mark}")
    return "\n".join(lines)
