"""Throw-away Redis servers for the tests: standalone, a cluster, a sentinel.

Every server listens on a free loopback port, keeps its files in a temporary
directory, persists nothing (``--save "" --appendonly no``) unless given
`AOF_ALWAYS`, and is terminated by `stop`. Fault tests also `kill` a server
(SIGKILL) and `start` it again on the same port and directory, give a cluster
replicas, and give a sentinel's master a replica to fail over to.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from tests.support import free_port

SLOTS = 16384

#: Extra arguments for a server that loses no acknowledged write when killed:
#: an append-only file flushed to disk before each reply.
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")


def redis_server_binary() -> str | None:
    """Return the path of ``redis-server``, or None if it is not installed."""
    return shutil.which("redis-server")


class RedisProcess:
    """One ``redis-server`` process on 127.0.0.1."""

    def __init__(self, directory: Path, *extra: str, sentinel_conf: Path | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        binary = redis_server_binary()
        assert binary is not None, "redis-server is not on PATH"
        head = [binary, str(sentinel_conf), "--sentinel"] if sentinel_conf else [binary]
        self.args = [
            *head,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            *extra,
        ]
        self._log = (directory / "server.log").open("ab")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def start(self) -> None:
        """Start the stopped or killed server again: same port, same directory and files."""
        assert self.process.poll() is not None, "the server is still running"
        self._log.close()
        self._log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def kill(self) -> None:
        """Kill the server with SIGKILL (no shutdown, no final save) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def kill_once_replicated(self, nodes: Sequence[RedisProcess], timeout: float = 10.0) -> None:
        """SIGKILL this master once its replicas among ``nodes`` hold all it acknowledged.

        Redis replicates asynchronously, so a master killed under load takes
        the writes it acknowledged in its last moments with it (Redis documents
        this; a CI run saw 47 answers go back in time that way). The failover
        tests prove our side (only `BackendUnavailable`, no wrong answer, the
        executor follows the new master), so they first pause writes here
        (``CLIENT PAUSE ... WRITE``: writers wait, reads go on), wait until
        every replica's offset reaches the master's, then kill. The paused
        callers see their connection die: their outcome stays unknown to them.
        """
        with self.client() as client:
            client.execute_command("CLIENT PAUSE", int(timeout * 1000) + 5000, "WRITE")
            target = int(client.info("replication")["master_repl_offset"])
        deadline = time.monotonic() + timeout
        for node in nodes:
            if node is self or node.process.poll() is not None:
                continue
            with node.client() as replica:
                while True:
                    info = replica.info("replication")
                    if info.get("role") != "slave" or int(info.get("master_port", 0)) != self.port:
                        break
                    if int(info.get("slave_repl_offset", -1)) >= target:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a replica of port {self.port} did not catch up")
                    time.sleep(0.01)
        self.kill()

    def node_id(self) -> str:
        """This cluster node's id (``CLUSTER MYID``)."""
        with self.client() as client:
            return str(client.execute_command("CLUSTER MYID").decode())

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client for set-up commands."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server answers PING."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = (self.directory / "server.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited early: {self.args}\n{log[-2000:]}")
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop the server and start it again on the same port.

        Without `AOF_ALWAYS` it forgets everything.
        """
        self.stop()
        self.start()

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class RedisClusterProcesses:
    """Cluster-enabled masters that share the 16384 slots evenly, each with ``replicas``.

    ``node_timeout_ms`` is how long a master may stay silent before its
    replica takes over (a real failover).
    """

    def __init__(
        self,
        directory: Path,
        masters: int = 3,
        *,
        replicas: int = 0,
        node_timeout_ms: int = 5000,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.nodes: list[RedisProcess] = []
        self.replicas: list[RedisProcess] = []
        self.bus_ports: dict[int, int] = {}
        self.masters = masters
        try:
            for index in range(masters):
                self.nodes.append(self._node(directory / f"node{index}", node_timeout_ms, extra))
            self._assign_slots()
            for index in range(masters * replicas):
                self.replicas.append(
                    self._node(directory / f"replica{index}", node_timeout_ms, extra)
                )
            self._meet()
            self.wait_ok()
            if self.replicas:
                self._replicate(replicas)
        except BaseException:
            self.stop()
            raise

    def _node(self, directory: Path, node_timeout_ms: int, extra: tuple[str, ...]) -> RedisProcess:
        bus_port = free_port()
        node = RedisProcess(
            directory,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            # An explicit bus port: the default (port + 10000) may
            # be taken or out of range for a high free port.
            "--cluster-port", str(bus_port),
            *extra,
        )
        self.bus_ports[node.port] = bus_port
        return node

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…`` (every node, masters first)."""
        every = self.nodes + self.replicas
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in every)

    def _assign_slots(self) -> None:
        share = SLOTS // len(self.nodes)
        for index, node in enumerate(self.nodes):
            first = index * share
            last = SLOTS - 1 if index == len(self.nodes) - 1 else first + share - 1
            with node.client() as client:
                # ADDSLOTS (not ADDSLOTSRANGE) also works before Redis 7.0.
                client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))

    def _meet(self) -> None:
        with self.nodes[0].client() as client:
            for node in self.nodes[1:] + self.replicas:
                client.execute_command(
                    "CLUSTER MEET", "127.0.0.1", node.port, self.bus_ports[node.port]
                )

    def _replicate(self, per_master: int, timeout: float = 30.0) -> None:
        """Make each replica follow its master, and wait until every one is in sync."""
        ids = [node.node_id() for node in self.nodes]
        deadline = time.monotonic() + timeout
        for index, replica in enumerate(self.replicas):
            master_id = ids[index // per_master]
            with replica.client() as client:
                while True:
                    # The replica must first have heard of its master through gossip.
                    try:
                        client.execute_command("CLUSTER REPLICATE", master_id)
                        break
                    except redis.exceptions.ResponseError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        for replica in self.replicas:
            with replica.client() as client:
                while client.info("replication").get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise RuntimeError("a cluster replica did not sync with its master")
                    time.sleep(0.05)
        self.wait_ok(timeout)

    def wait_replicas_in_sync(self, timeout: float = 30.0) -> None:
        """Wait until as many live nodes as there are replicas replicate, in sync.

        After a failover and the old master's restart, that node must first
        rejoin as a replica and sync before it can take over in turn.
        """
        deadline = time.monotonic() + timeout
        while True:
            synced = 0
            for node in self.nodes + self.replicas:
                if node.process.poll() is not None:
                    continue
                with node.client() as client:
                    info = client.info("replication")
                    if info.get("role") == "slave" and info.get("master_link_status") == "up":
                        synced += 1
            if synced == len(self.replicas):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{synced} of {len(self.replicas)} replicas in sync")
            time.sleep(0.05)

    def master_of_slot(self, slot: int) -> RedisProcess:
        """The node that serves ``slot`` now (after a failover, maybe a former replica)."""
        by_port = {node.port: node for node in self.nodes + self.replicas}
        for node in by_port.values():
            if node.process.poll() is not None:
                continue
            with node.client() as client:
                for entry in client.execute_command("CLUSTER SLOTS"):
                    if int(entry[0]) <= slot <= int(entry[1]):
                        return by_port[int(entry[2][1])]
        raise RuntimeError(f"no live node knows who serves slot {slot}")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live node reports ``cluster_state:ok`` and knows every slot's owner."""
        deadline = time.monotonic() + timeout
        while True:
            live = [n for n in self.nodes + self.replicas if n.process.poll() is None]
            if all(self._node_ok(node) for node in live):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not converge")
            time.sleep(0.05)

    def _node_ok(self, node: RedisProcess) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER INFO")
            if info.get("cluster_state") != "ok":
                return False
            slots = client.execute_command("CLUSTER SLOTS")
            owners = {(entry[2][1]) for entry in slots}
            covered = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
            return covered == SLOTS and len(owners) == self.masters

    def stop(self) -> None:
        """Terminate every node."""
        for node in self.nodes + self.replicas:
            node.stop()


class SentinelProcesses:
    """A standalone master watched by one sentinel (quorum 1), under ``service_name``.

    With ``replicas``, the master has that many replicas (in sync before the
    sentinel starts, so it knows them at once) and the sentinel fails over to
    one of them once the master has been silent for ``down_after_ms``.
    """

    def __init__(
        self,
        directory: Path,
        service_name: str = "stateful-test",
        *,
        replicas: int = 0,
        down_after_ms: int = 30000,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.service_name = service_name
        self.master = RedisProcess(directory / "master", *extra)
        self.replicas: list[RedisProcess] = []
        self.sentinel: RedisProcess | None = None
        try:
            for index in range(replicas):
                self.replicas.append(
                    RedisProcess(
                        directory / f"replica{index}",
                        "--replicaof", "127.0.0.1", str(self.master.port),
                        *extra,
                    )
                )
            self._wait_replicas_synced()
            conf = directory / "sentinel" / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(
                f"sentinel monitor {service_name} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {service_name} {down_after_ms}\n"
                f"sentinel failover-timeout {service_name} {max(down_after_ms * 2, 10000)}\n"
            )
            self.sentinel = RedisProcess(conf.parent, sentinel_conf=conf)
            self._wait_known()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:<sentinel port>/<service>``."""
        assert self.sentinel is not None
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service_name}"

    def _wait_replicas_synced(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            with replica.client() as client:
                while client.info("replication").get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise RuntimeError("a replica did not sync with its master")
                    time.sleep(0.05)

    def _wait_known(self, timeout: float = 20.0) -> None:
        """Wait until the sentinel knows the master and every replica."""
        assert self.sentinel is not None
        deadline = time.monotonic() + timeout
        with self.sentinel.client() as client:
            while not client.execute_command(
                "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service_name
            ) or len(client.execute_command("SENTINEL REPLICAS", self.service_name)) < len(
                self.replicas
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the sentinel does not know the master and its replicas")
                time.sleep(0.05)

    def wait_replica_ready(self, timeout: float = 30.0) -> None:
        """Wait until a live replica is in sync and the sentinel sees it healthy.

        After a failover the old master, started again, first has to be turned
        into a replica by the sentinel and sync. The node itself is asked too:
        the sentinel's view of a replica may be up to 10 s old.
        """
        assert self.sentinel is not None
        deadline = time.monotonic() + timeout
        with self.sentinel.client() as client:
            while True:
                replicas = client.execute_command("SENTINEL REPLICAS", self.service_name)
                if any(_healthy(replica) for replica in replicas) and self._replica_in_sync():
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no healthy replica for the sentinel: {replicas}")
                time.sleep(0.05)

    def _replica_in_sync(self) -> bool:
        for node in [self.master, *self.replicas]:
            if node.process.poll() is not None:
                continue
            with node.client() as client:
                info = client.info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") == "up":
                    return True
        return False

    def master_port(self) -> int:
        """The port of the master the sentinel names now."""
        assert self.sentinel is not None
        with self.sentinel.client() as client:
            _host, port = client.execute_command(
                "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service_name
            )
            return int(port)

    def stop(self) -> None:
        """Terminate the sentinel, the replicas and the master."""
        if self.sentinel is not None:
            self.sentinel.stop()
        for replica in self.replicas:
            replica.stop()
        self.master.stop()


def _healthy(replica: object) -> bool:
    """Whether a ``SENTINEL REPLICAS`` entry is a connected replica in sync with its master."""
    if isinstance(replica, list):  # RESP2 without decoding: a flat key/value list
        replica = dict(zip(replica[::2], replica[1::2], strict=False))
    assert isinstance(replica, dict)
    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    fields = {text(key): text(value) for key, value in replica.items()}
    return fields.get("flags") == "slave" and fields.get("master-link-status") == "ok"
