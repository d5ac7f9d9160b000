"""Throw-away Redis servers for the tests: standalone, a three-master cluster, a sentinel.

Every server listens on a free loopback port, keeps its files in a temporary
directory, persists nothing (``--save "" --appendonly no``) and is terminated
by `stop`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support import free_port

SLOTS = 16384


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
        """Stop the server and start it again on the same port (it forgets everything)."""
        self.stop()
        self._log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()

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
    """Three cluster-enabled masters that share the 16384 slots evenly, no replicas."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisProcess] = []
        self.bus_ports: list[int] = []
        try:
            for index in range(masters):
                bus_port = free_port()
                self.bus_ports.append(bus_port)
                self.nodes.append(
                    RedisProcess(
                        directory / f"node{index}",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000",
                        # An explicit bus port: the default (port + 10000) may
                        # be taken or out of range for a high free port.
                        "--cluster-port", str(bus_port),
                    )
                )
            self._assign_slots()
            self._meet()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…``."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

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
            for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                client.execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus_port)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every node reports ``cluster_state:ok`` and knows every slot's owner."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._node_ok(node) for node in self.nodes):
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
            return covered == SLOTS and len(owners) == len(self.nodes)

    def stop(self) -> None:
        """Terminate every node."""
        for node in self.nodes:
            node.stop()


class SentinelProcesses:
    """A standalone master watched by one sentinel (quorum 1), under ``service_name``."""

    def __init__(self, directory: Path, service_name: str = "stateful-test") -> None:
        self.service_name = service_name
        self.master = RedisProcess(directory / "master")
        try:
            conf = directory / "sentinel" / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(
                f"sentinel monitor {service_name} 127.0.0.1 {self.master.port} 1\n"
            )
            self.sentinel = RedisProcess(conf.parent, sentinel_conf=conf)
            self._wait_known()
        except BaseException:
            self.master.stop()
            raise

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:<sentinel port>/<service>``."""
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service_name}"

    def _wait_known(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.sentinel.client() as client:
            while not client.execute_command(
                "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service_name
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the sentinel does not know the master")
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the sentinel and the master."""
        self.sentinel.stop()
        self.master.stop()
