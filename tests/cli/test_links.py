"""``stateful link ...`` against each store: tables, JSON, exit codes, refusals."""

from __future__ import annotations

import re

from tests.cli.conftest import Cli


def pods_up(cli: Cli, *pods: int, state: str = "ready") -> None:
    for pod in pods:
        cli.ok("state", "set", "prod", "game", str(pod), state)


def test_get_of_an_absent_link_exits_1_with_one_line(cli: Cli) -> None:
    result = cli.fails(1, "link", "get", "prod", "alice", "game")
    assert result.out == ""
    assert "no live link for 'alice' in 'game'" in result.err
    result = cli.fails(1, "link", "get", "prod", "alice", "game", "--json")
    assert result.json() == {"namespace": "prod", "uid": "alice", "service": "game", "pod": None}


def test_set_then_get_and_info(cli: Cli) -> None:
    pods_up(cli, 1, 3)
    result = cli.ok("link", "set", "prod", "alice", "game", "3")
    assert result.out == "alice -> game pod 3 (permanent); was no live link\n"
    result = cli.ok("link", "set", "prod", "alice", "game", "1", "--ttl", "30", "--json")
    assert result.json() == {"pod": 1, "ttl_seconds": 30, "previous": 3}

    lines = cli.ok("link", "get", "prod", "alice", "game").out.splitlines()
    assert lines[0].split() == ["UID", "SERVICE", "POD"]
    assert lines[1].split() == ["alice", "game", "1"]
    assert cli.ok("link", "get", "prod", "alice", "game", "--json").json()["pod"] == 1
    # A temporary link is not a permanent one.
    cli.fails(1, "link", "get", "prod", "alice", "game", "--permanent")

    lines = cli.ok("link", "info", "prod", "alice", "game").out.splitlines()
    assert lines[0].split() == ["UID", "SERVICE", "POD", "TTL", "EXPIRES", "UPDATED"]
    assert re.match(r"alice +game +1 +(29|30)s +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +\d{4}-", lines[1])
    info = cli.ok("link", "info", "prod", "alice", "game", "--json").json()
    assert info["pod"] == 1 and info["permanent"] is False
    assert info["expires_at_ms"] - info["updated_at_ms"] == 30_000

    cli.ok("link", "set", "prod", "alice", "game", "3")
    lines = cli.ok("link", "info", "prod", "alice", "game").out.splitlines()
    assert lines[1].split()[2:5] == ["3", "permanent", "never"]
    assert cli.ok("link", "info", "prod", "alice", "game", "--json").json()["expires_at_ms"] is None
    cli.fails(1, "link", "info", "prod", "bob", "game")


def test_writes_to_a_pod_without_a_live_state_are_refused_unless_forced(cli: Cli) -> None:
    pods_up(cli, 0)
    for action in ("set", "try-set", "set-if-absent"):
        result = cli.fails(1, "link", action, "prod", "alice", "game", "5")
        assert "refused: pod 5 of 'game' has no live state (pods: 0 ready)" in result.err
        assert "--force" in result.err
    cli.fails(1, "link", "get", "prod", "alice", "game")  # nothing was written
    cli.ok("link", "set", "prod", "alice", "game", "5", "--force")
    assert cli.ok("link", "get", "prod", "alice", "game", "--json").json()["pod"] == 5


def test_a_pod_that_is_not_ready_draws_a_warning(cli: Cli) -> None:
    pods_up(cli, 2, state="draining")
    result = cli.ok("link", "set", "prod", "alice", "game", "2")
    assert result.err == "stateful: warning: pod 2 of 'game' is 'draining', not 'ready'\n"


def test_try_set_is_refused_by_a_permanent_link_elsewhere(cli: Cli) -> None:
    pods_up(cli, 1, 2)
    cli.ok("link", "set", "prod", "alice", "game", "2")
    result = cli.fails(1, "link", "try-set", "prod", "alice", "game", "1", "--json")
    assert result.json() == {"ok": False, "pod": 2}
    assert (
        "refused: 'alice' in 'game' (namespace 'prod') has a permanent link to pod 2" in result.err
    )
    cli.ok("link", "remove", "prod", "alice", "game", "--keep", "60")
    result = cli.ok("link", "try-set", "prod", "alice", "game", "1")  # a kept link never blocks
    assert result.out == "alice -> game pod 1 (permanent)\n"


def test_set_if_absent_keeps_a_live_link(cli: Cli) -> None:
    pods_up(cli, 1, 2)
    assert cli.ok("link", "set-if-absent", "prod", "bob", "game", "1").out == "bob -> game pod 1\n"
    result = cli.ok("link", "set-if-absent", "prod", "bob", "game", "2")
    assert result.out == "bob stays on game pod 1 (already linked)\n"
    assert cli.ok("link", "set-if-absent", "prod", "bob", "game", "2", "--json").json() == {
        "pod": 1
    }


def test_remove_with_pod_and_keep(cli: Cli) -> None:
    pods_up(cli, 1)
    cli.ok("link", "set", "prod", "carol", "game", "1")
    result = cli.fails(1, "link", "remove", "prod", "carol", "game", "--pod", "2", "--json")
    assert result.json() == {"removed": False}
    assert "no live link to pod 2 for 'carol'" in result.err
    result = cli.ok("link", "remove", "prod", "carol", "game", "--pod", "1", "--keep", "45")
    assert result.out == "removed the link of carol to game; kept 45s for a reconnect\n"
    info = cli.ok("link", "info", "prod", "carol", "game", "--json").json()
    assert info["pod"] == 1 and info["expires_at_ms"] - info["updated_at_ms"] == 45_000
    assert cli.ok("link", "remove", "prod", "carol", "game", "--json").json() == {"removed": True}
    cli.fails(1, "link", "remove", "prod", "carol", "game")


def test_services_lists_permanent_links(cli: Cli) -> None:
    pods_up(cli, 4)
    cli.ok("link", "set", "prod", "dave", "game", "4")
    cli.ok("link", "set", "prod", "dave", "chat", "7", "--force")
    cli.ok("link", "set", "prod", "dave", "lobby", "1", "--force", "--ttl", "60")
    lines = cli.ok("link", "services", "prod", "dave").out.splitlines()
    assert [line.split() for line in lines] == [["SERVICE", "POD"], ["chat", "7"], ["game", "4"]]
    assert cli.ok("link", "services", "prod", "dave", "--json").json() == [
        {"service": "chat", "pod": 7},
        {"service": "game", "pod": 4},
    ]
    result = cli.ok("link", "services", "prod", "erin")
    assert result.out == "" and "no permanent link" in result.err


def test_batch_get_from_arguments_and_stdin(cli: Cli) -> None:
    pods_up(cli, 1, 2)
    cli.ok("link", "set", "prod", "a b", "game", "2")  # uids may hold spaces
    cli.ok("link", "set", "prod", "c", "game", "1")
    lines = cli.ok("link", "batch-get", "prod", "game", "c", "a b", "zed").out.splitlines()
    assert [line.rsplit(None, 1) for line in lines] == [["UID", "POD"], ["c", "1"], ["a b", "2"]]
    result = cli.ok("link", "batch-get", "prod", "game", "--json", stdin="a b\nzed\n\nc\n")
    assert result.json() == [{"uid": "a b", "pod": 2}, {"uid": "c", "pod": 1}]
    assert result.err == "stateful: 1 of 3 uids have no live link\n"
