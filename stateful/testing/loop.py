"""One event loop for driving async stores from synchronous Hypothesis rules.

Hypothesis has no async state machines. Calling ``asyncio.run`` per rule would
create a new loop each time and break clients bound to the first one, so the
kit keeps one loop for the whole test session and runs each coroutine on it
with ``run_until_complete`` (the loop is never left running between calls).
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None


def session_loop() -> asyncio.AbstractEventLoop:
    """Return the kit's event loop, creating it on first use."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        atexit.register(_close, _loop)
    return _loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on the session loop."""
    return session_loop().run_until_complete(coroutine)


def cancel_leftover_tasks() -> None:
    """Cancel tasks still pending on the session loop and let them finish."""
    loop = session_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def _close(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed():
        return
    global _loop
    _loop = None
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
