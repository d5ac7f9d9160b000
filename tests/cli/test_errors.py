"""Usage errors, invalid input, unreachable stores, missing extras: one line, the right code."""

from __future__ import annotations

import sys

import pytest

from stateful.cli import main
from tests.cli.conftest import Cli
from tests.support import free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["link"],
        ["link", "get", "prod", "alice"],
        ["link", "set", "prod", "alice", "game", "three"],
        ["state", "set", "prod", "game", "1"],
        ["nope"],
        ["link", "get", "prod", "alice", "game", "--colour"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("stateful") and err.count("\n") == 1, err
    assert "--help" in err


def test_invalid_values_exit_2_naming_the_argument(cli: Cli) -> None:
    result = cli.fails(2, "link", "set", "prod", "alice", "game", "-1", "--force")
    assert result.err == "stateful: invalid pod_id: must be in 0..2147483647, got -1\n"
    result = cli.fails(2, "link", "set", "prod", "alice", "game", "1", "--ttl", "0", "--force")
    assert "invalid persist_seconds" in result.err
    result = cli.fails(2, "state", "set", "prod", "game", "1", "ready", "--ttl", "-5")
    assert "invalid ttl_seconds" in result.err
    cli.fails(2, "link", "get", "", "alice", "game")


@pytest.mark.parametrize("scheme", ["redis", "postgresql+asyncpg", "mysql+asyncmy"])
def test_an_unreachable_store_exits_3(
    scheme: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{scheme}://root@127.0.0.1:{free_port()}/db"
    if scheme == "redis":
        url = f"redis://127.0.0.1:{free_port()}/0"
    code, out, err = run(
        capsys, "link", "get", "prod", "alice", "game", "--url", url, "--timeout", "5"
    )
    assert code == 3 and out == ""
    assert err.startswith("stateful: store failed: ") and err.count("\n") == 1, err


def test_the_url_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEFUL_URL", "nope://somewhere")
    code, _, err = run(capsys, "link", "get", "prod", "alice", "game")
    assert code == 2
    assert "no backend for scheme 'nope'" in err
    for scheme in (
        "memory",
        "redis",
        "redis+cluster",
        "sqlite+aiosqlite",
        "postgresql+asyncpg",
        "mysql+asyncmy",
        "mariadb+asyncmy",
    ):
        assert scheme in err
    code, _, err = run(capsys, "link", "get", "prod", "alice", "game", "--url", "nope2://x")
    assert "'nope2'" in err  # --url wins over the variable


def test_a_prefix_on_a_store_without_one_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        capsys, "state", "get", "prod", "game", "--url", "memory://", "--prefix", "x:"
    )
    assert (code, err) == (2, "stateful: --prefix: memory stores have no prefix\n")


@pytest.mark.parametrize(
    ("url", "blocked", "extra"),
    [
        ("postgresql+asyncpg://u@127.0.0.1/db", "asyncpg", "postgresql"),
        ("postgresql://u@127.0.0.1/db", "asyncpg", "postgresql"),
        ("mysql+asyncmy://u@127.0.0.1/db", "asyncmy", "mysql"),
        ("mariadb://u@127.0.0.1/db", "asyncmy", "mysql"),
        ("sqlite+aiosqlite:///x.db", "aiosqlite", "sql"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(
    url: str,
    blocked: str,
    extra: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)  # as if it were not installed
    code, _, err = run(capsys, "link", "get", "prod", "alice", "game", "--url", url)
    assert code == 2
    assert f"pip install 'stateful-routing[{extra}]'" in err and err.count("\n") == 1, err
