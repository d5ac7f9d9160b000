"""What a backend says it can do, so the kit knows which checks apply.

A third-party store may not honour an injected clock, may not be atomic
across connections, or may not be safe to cancel. It declares that here and
the kit skips the checks that need it, saying why; everything it declares is
checked, so a declaration that does not hold fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Declared properties of a backend under test (all default to what built-in backends do).

    * ``injected_clock``: reads time from the clock it is given, to the
      millisecond. Without it the kit uses permanent links and states only
      and never moves the clock.
    * ``concurrent``: atomic when several executors share the store (the
      concurrency and placement rounds run only then).
    * ``cross_process``: atomic across processes (declared for the report;
      the in-process rounds check the same property over several executors).
    * ``cancel_safe``: None means "whatever the backend's ``cancel_safe``
      attribute says"; the cancellation rounds cancel calls at random points
      either way and check the store is fully before or fully after.
    * ``max_batch``: the largest ``uids`` list the backend accepts in one
      call, or None for any length; batches beyond 2,000 uids need None or
      a larger value.
    * ``server_clock``: reads the store's own clock by default (for the report).
    """

    injected_clock: bool = True
    concurrent: bool = True
    cross_process: bool = True
    cancel_safe: bool | None = None
    max_batch: int | None = None
    server_clock: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the declaration as plain JSON-ready values (for the report)."""
        return asdict(self)

    def missing(self, needed: str) -> str | None:
        """Return why a check needing ``needed`` cannot run, or None when it can."""
        if needed == "large_batch":
            if self.max_batch is not None and self.max_batch <= 2000:
                return (
                    "needs batches beyond 2,000 uids; the backend declares "
                    f"max_batch={self.max_batch}"
                )
            return None
        if not getattr(self, needed):
            return f"needs the capability {needed!r}, which the backend does not declare"
        return None
