"""A checked load on one executor, kept running while a fault is injected.

Each worker task is the only writer of its own uids, so it knows what every
answer must be: it keeps, per uid, the set of pods (or None) the link may
hold. A successful call must answer from that set and narrows it; a call that
fails with `BackendUnavailable` has an unknown outcome, so its effect joins the
set and the uid is *retired* (no further calls: a write abandoned by its
caller may still land later, and must not be confused with a later one).

After the fault the same executor reads every uid once: a uid whose link is
outside its set lost an acknowledged write (or holds one that never happened).
Any exception other than `BackendUnavailable` is an *unwrapped* error: the
contract allows none while a fault lasts.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stateful import BackendUnavailable, StatefulExecutor

#: Long variants: ``STATEFUL_DEEP=1`` or ``HYPOTHESIS_PROFILE=deep`` (see docs/reliability.md).
DEEP = os.environ.get("STATEFUL_DEEP") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "deep"

SERVICE = "game"  # the service of every link the load makes
PODS = 8
#: Uids per call of the final read-back.
READ_BACK_CHUNK = 500
#: Uids read by each recovery probe pass.
PROBES = 24

Possible = set[int | None]


@dataclass
class Figures:
    """What one fault test prints: the issue's figures plus what they rest on."""

    name: str
    faults: int = 0
    calls: int = 0
    failed: int = 0
    wrong: int = 0
    lost: int = 0
    unwrapped: int = 0  # errors other than BackendUnavailable
    recover_s: list[float] = field(default_factory=list)
    checked_uids: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        """Keep the first few problems for the assertion message."""
        if len(self.examples) < 10:
            self.examples.append(problem)

    def line(self) -> str:
        """One line with every figure, printed by each test."""
        recover = ", ".join(f"{s:.2f}" for s in self.recover_s) or "-"
        return (
            f"[faults] {self.name}: faults injected {self.faults}, calls {self.calls}, "
            f"failed {self.failed}, wrong answers {self.wrong}, "
            f"acknowledged writes lost {self.lost}, "
            f"errors other than BackendUnavailable {self.unwrapped}, "
            f"uids checked {self.checked_uids}, seconds to recover [{recover}]"
        )

    def check(self) -> None:
        """Print the figures and fail on any wrong answer, lost write or unwrapped error."""
        print(self.line())
        assert self.wrong == 0 and self.lost == 0 and self.unwrapped == 0, (
            f"{self.line()}\n" + "\n".join(self.examples)
        )


class Load:
    """Workers hammering one executor with checked link operations on their own uids."""

    def __init__(
        self,
        executor: StatefulExecutor,
        namespace: str,
        figures: Figures,
        *,
        workers: int = 16,
        seed: int = 7,
    ) -> None:
        """Prepare ``workers`` tasks on ``executor`` in ``namespace``; call `start`."""
        self.executor = executor
        self.namespace = namespace
        self.figures = figures
        self.workers = workers
        self.random = random.Random(seed)
        self.possible: dict[str, Possible] = {}
        self.retired: set[str] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._uid_counter = 0

    def start(self) -> None:
        """Start the worker tasks."""
        self._tasks = [asyncio.create_task(self._worker(n)) for n in range(self.workers)]

    async def stop(self) -> None:
        """Ask the workers to finish their current call and wait for them."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def recovered_after(self, healed_at: float, limit: float) -> float:
        """Probe until the executor answers again; return seconds since ``healed_at``.

        A probe pass reads `PROBES` uids nobody links (each must answer None),
        spread over the store's keys (on a cluster: over every master). The
        executor has recovered when one whole pass succeeds; the test fails if
        that takes more than ``limit`` seconds: the executor must recover by
        itself, with no help from the test.
        """
        deadline = time.monotonic() + limit
        probes = [f"probe:{n}" for n in range(PROBES)]
        last: BaseException | None = None
        while True:
            answers = await asyncio.gather(
                *(self.executor.get_linked_pod(self.namespace, uid, SERVICE) for uid in probes),
                return_exceptions=True,
            )
            self.figures.calls += len(probes)
            failures = [a for a in answers if isinstance(a, BaseException)]
            for uid, answer in zip(probes, answers, strict=True):
                if isinstance(answer, BackendUnavailable):
                    self.figures.failed += 1
                elif isinstance(answer, BaseException):
                    self.figures.failed += 1
                    self.figures.unwrapped += 1
                    self.figures.note(f"probe: {type(answer).__name__}: {answer!r}")
                elif answer is not None:
                    self.figures.wrong += 1
                    self.figures.note(f"{uid}: never linked, answered {answer!r}")
            if failures:
                last = failures[0]
            else:
                seconds = max(0.0, time.monotonic() - healed_at)
                self.figures.recover_s.append(seconds)
                return seconds
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the executor did not recover within {limit} s: {self.figures.line()}; "
                    f"last error {last!r}"
                )
            await asyncio.sleep(0.02)

    async def run_for(self, seconds: float) -> None:
        """Let the load run ``seconds`` more."""
        await asyncio.sleep(seconds)

    def _new_uid(self, worker: int) -> str:
        self._uid_counter += 1
        uid = f"w{worker}:u{self._uid_counter}"
        self.possible[uid] = {None}
        return uid

    async def _worker(self, worker: int) -> None:
        own = [self._new_uid(worker) for _ in range(4)]
        while not self._stop.is_set():
            index = self.random.randrange(len(own))
            uid = own[index]
            if not await self._one_call(uid):
                self.retired.add(uid)
                own[index] = self._new_uid(worker)
                # A failing store answers at once; do not spin on it.
                await asyncio.sleep(0.01)
            else:
                # A store that never suspends (memory) must not starve the test.
                await asyncio.sleep(0)

    async def _one_call(self, uid: str) -> bool:
        """Make one random call on ``uid``; return False if its outcome is unknown."""
        ex, ns, rnd = self.executor, self.namespace, self.random
        possible = self.possible[uid]
        pod = rnd.randrange(PODS)
        kind = rnd.randrange(6)
        call: Callable[[], Awaitable[object]]
        effect: Possible  # what the link may hold if the call happened
        if kind == 0:
            call, effect = (lambda: ex.get_linked_pod(ns, uid, SERVICE)), set()
        elif kind in (1, 2):
            call, effect = (lambda: ex.set_linked_pod(ns, uid, SERVICE, pod, -1)), {pod}
        elif kind == 3:
            call, effect = (lambda: ex.remove_linked_pod(ns, uid, SERVICE, 0)), {None}
        elif kind == 4:
            call = lambda: ex.set_linked_pod_if_absent(ns, uid, SERVICE, pod, -1)  # noqa: E731
            effect = {pod} if None in possible else set()
        else:
            call = lambda: ex.try_set_linked_pod(ns, uid, SERVICE, pod, -1)  # noqa: E731
            effect = {pod}
        self.figures.calls += 1
        try:
            answer = await call()
        except BackendUnavailable:
            self.figures.failed += 1
            possible |= effect
            return False
        except Exception as exc:  # anything else breaks the contract
            self.figures.failed += 1
            self.figures.unwrapped += 1
            self.figures.note(f"unwrapped {type(exc).__name__}: {exc!r} (cause {exc.__cause__!r})")
            possible |= effect
            return False
        self._check(uid, kind, pod, answer, possible)
        return True

    def _check(self, uid: str, kind: int, pod: int, answer: object, possible: Possible) -> None:
        def wrong(expected: object) -> None:
            self.figures.wrong += 1
            self.figures.note(f"{uid}: op {kind} pod {pod} answered {answer!r}, {expected}")

        if kind == 0:
            if answer not in possible:
                wrong(f"link may be {possible}")
            after: Possible = {answer} if isinstance(answer, int) else {None}
        elif kind in (1, 2):
            if answer not in possible:
                wrong(f"previous may be {possible}")
            after = {pod}
        elif kind == 3:
            if answer is True and possible == {None}:
                wrong("no link to remove")
            if answer is False and None not in possible:
                wrong(f"link was {possible}")
            after = {None}
        elif kind == 4:
            if answer == pod:
                if None not in possible and pod not in possible:
                    wrong(f"link was {possible}")
            elif answer not in possible:
                wrong(f"link may be {possible}")
            after = {answer} if isinstance(answer, int) else {None}
        else:
            # Every link here is permanent: (False, other) iff another pod held it.
            assert isinstance(answer, tuple)
            ok, linked = answer
            if ok and (linked != pod or (None not in possible and pod not in possible)):
                wrong(f"link may be {possible}")
            if not ok and (linked == pod or linked not in possible):
                wrong(f"link may be {possible}")
            after = {pod} if ok else {linked}
        possible.clear()
        possible.update(after)

    async def read_back(self) -> None:
        """Read every uid once on the same executor and count links outside their sets.

        A uid still carrying one value was only answered successfully: a
        different link there is a lost acknowledged write. A retired uid may
        hold any value of its set.
        """
        uids = list(self.possible)
        found: dict[str, int] = {}
        for first in range(0, len(uids), READ_BACK_CHUNK):
            chunk = uids[first : first + READ_BACK_CHUNK]
            grouped = await self.executor.batch_get_linked_pod(self.namespace, chunk, SERVICE)
            for pod, members in grouped.items():
                for uid in members:
                    found[uid] = pod
        for uid in uids:
            value = found.get(uid)
            if value not in self.possible[uid]:
                self.figures.lost += 1
                self.figures.note(
                    f"{uid}: holds {value!r} after the fault, acknowledged {self.possible[uid]}"
                    + (" (retired)" if uid in self.retired else "")
                )
        self.figures.checked_uids = len(uids)


def scaled(ci: int, deep: int) -> int:
    """``deep`` under the deep profile, else the CI-sized ``ci``."""
    return deep if DEEP else ci


async def under_fault(
    executor: StatefulExecutor,
    name: str,
    inject: Callable[[], Awaitable[None]],
    *,
    rounds: int,
    warm: float = 0.5,
    settle: float = 0.5,
    recover_limit: float = 20.0,
    workers: int = 16,
) -> Figures:
    """Run a checked `Load` on ``executor`` and inject a fault ``rounds`` times.

    ``inject`` returns once the fault is in place, or over (a restart returns
    when the server is back); recovery is timed from then. After the last
    round the load stops, every uid is read back on the same executor, and the
    figures are printed and checked.
    """
    figures = Figures(name)
    load = Load(executor, f"faults-{uuid.uuid4().hex[:8]}", figures, workers=workers)
    load.start()
    try:
        await asyncio.sleep(warm)
        for _ in range(rounds):
            await inject()
            figures.faults += 1
            await load.recovered_after(time.monotonic(), recover_limit)
            await asyncio.sleep(settle)
    finally:
        await load.stop()
    await load.read_back()
    figures.check()
    return figures
