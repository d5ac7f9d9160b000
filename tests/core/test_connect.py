"""URL schemes, the backend registry, entry points and clocks."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

import stateful
from stateful import ManualClock, SystemClock, ValidationError, registry
from stateful.backends.memory import MemoryBackend
from stateful.clock import Clock


async def test_memory_url_gives_a_working_executor() -> None:
    clock = ManualClock(start_ms=0)
    async with stateful.connect("memory://", clock=clock, timeout=2.0) as ex:
        assert isinstance(ex.backend, MemoryBackend)
        assert ex.timeout == 2.0
        await ex.set_linked_pod("ns", "u", "svc", 1, 1)
        clock.advance(1)
        assert await ex.get_linked_pod("ns", "u", "svc") is None


@pytest.mark.parametrize("url", ["nope://x", "memory", "", "://x"])
def test_unknown_or_malformed_urls_are_validation_errors(url: str) -> None:
    with pytest.raises(ValidationError, match="url"):
        stateful.connect(url)


def test_memory_backend_rejects_a_path_and_options() -> None:
    with pytest.raises(ValidationError, match="memory://"):
        stateful.connect("memory://somewhere")
    with pytest.raises(ValidationError, match="options"):
        stateful.connect("memory://", pool_size=3)


def fake_factory(url: str, *, clock: Clock | None = None, **options: Any) -> MemoryBackend:
    backend = MemoryBackend(clock=clock)
    backend.url = url  # type: ignore[attr-defined]
    return backend


def test_third_party_backend_joins_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint(
        name="fake", value=f"{__name__}:fake_factory", group=registry.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [entry] if group == entry.group else []
    )
    ex = stateful.connect("fake://host/x")
    assert ex.backend.url == "fake://host/x"  # type: ignore[attr-defined]


def test_register_backend_overrides_for_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    stateful.register_backend("Custom", fake_factory)
    assert isinstance(stateful.connect("custom://a").backend, MemoryBackend)


def test_clocks() -> None:
    manual = ManualClock(start_ms=1000)
    manual.advance(1.5)
    manual.advance_ms(2)
    assert manual.now_ms() == 2502
    with pytest.raises(ValueError):
        manual.advance(-1)
    assert abs(ManualClock().now_ms() - SystemClock().now_ms()) < 5000
    assert isinstance(SystemClock(), stateful.Clock)
