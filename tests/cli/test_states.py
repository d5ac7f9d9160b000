"""``stateful state ...``, ``stateful workload ...`` and ``stateful pod ...`` against each store."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_pod_states_set_get_remove(cli: Cli) -> None:
    result = cli.ok("state", "get", "prod", "game")
    assert result.out == "" and result.err == "stateful: no pod of 'game' has a live state\n"
    assert (
        cli.ok("state", "set", "prod", "game", "0", "ready").out
        == "game pod 0: ready (permanent)\n"
    )
    result = cli.ok("state", "set", "prod", "game", "2", "draining", "--ttl", "90")
    assert result.out == "game pod 2: draining (for 1m30s)\n"
    lines = cli.ok("state", "get", "prod", "game").out.splitlines()
    assert [line.split() for line in lines] == [["POD", "STATE"], ["0", "ready"], ["2", "draining"]]
    assert cli.ok("state", "get", "prod", "game", "--json").json() == [
        {"pod": 0, "state": "ready"},
        {"pod": 2, "state": "draining"},
    ]
    assert cli.ok("state", "remove", "prod", "game", "2", "--json").json() == {"removed": True}
    result = cli.fails(1, "state", "remove", "prod", "game", "2")
    assert "pod 2 of 'game' has no live state" in result.err
    assert cli.ok("state", "get", "prod", "game", "--json").json() == [{"pod": 0, "state": "ready"}]


def test_workload_states(cli: Cli) -> None:
    assert cli.ok("workload", "set", "prod", "game", "updating").out == "game: updating\n"
    lines = cli.ok("workload", "get", "prod", "game", "chat").out.splitlines()
    assert [line.split() for line in lines] == [
        ["SERVICE", "STATE"],
        ["game", "updating"],
        ["chat", "-"],
    ]
    assert cli.ok("workload", "get", "prod", "chat", "game", "--json").json() == [
        {"service": "chat", "state": None},
        {"service": "game", "state": "updating"},
    ]


def test_pod_count_links_and_drain(cli: Cli) -> None:
    for pod, state in ((0, "ready"), (1, "draining"), (2, "ready")):
        cli.ok("state", "set", "prod", "game", str(pod), state)
    users = [f"user-{i:02d}" for i in range(25)]
    for i, uid in enumerate(users):
        cli.ok("link", "set", "prod", uid, "game", "1" if i < 20 else "0", "--force")
    cli.ok("link", "set", "prod", "ghost", "game", "9", "--force")  # a pod without a state

    lines = cli.ok("pod", "count", "prod", "game").out.splitlines()
    assert [line.split() for line in lines] == [
        ["POD", "STATE", "LINKS"],
        ["0", "ready", "5"],
        ["1", "draining", "20"],
        ["2", "ready", "0"],
        ["9", "-", "1"],
    ]
    assert cli.ok("pod", "count", "prod", "game", "--json").json()[3] == {
        "pod": 9,
        "state": None,
        "links": 1,
    }

    # Pages of 7 uids: the walk crosses several pages and still lists each uid once.
    listed = cli.ok("pod", "links", "prod", "game", "1", "--page-size", "7").out.splitlines()
    assert sorted(listed) == users[:20]
    assert sorted(cli.ok("pod", "links", "prod", "game", "0", "--json").json()) == users[20:]
    assert cli.ok("pod", "links", "prod", "game", "2", "--json").json() == []
    assert cli.ok("pod", "links", "prod", "game", "2").out == ""

    result = cli.ok("pod", "drain", "prod", "game", "1", "--keep", "30")
    assert result.out == "removed 20 links to game pod 1 (kept 30s for a reconnect)\n"
    # Kept links still point at pod 1 for 30 s; a drain without --keep deletes them.
    assert cli.ok("pod", "drain", "prod", "game", "1", "--json").json() == {"removed": 20}
    assert cli.ok("pod", "links", "prod", "game", "1").out == ""
    assert [row["links"] for row in cli.ok("pod", "count", "prod", "game", "--json").json()] == [
        5,
        0,
        0,
        1,
    ]
