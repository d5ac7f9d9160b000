"""What a benchmark runs against: a stateful executor and the raw driver beside it.

A `Target` opens, on the same store, a `StatefulExecutor` over a fresh key or
table prefix and a raw client of the very driver the backend wraps (a dict,
redis-py, asyncpg, aiosqlite, asyncmy) that does the *minimal* equivalent of
each operation a hand-written implementation would send: one ``GET``, one
``EVALSHA`` of a 2-key script, one ``SELECT``, one upsert. `close` deletes
everything both sides wrote.
"""

from __future__ import annotations

import os
import resource
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit

import stateful
from stateful.executor import StatefulExecutor

NS = "bench"
SVC = "game"
WORKLOADS = [SVC, "lobby", "chat"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Target(ABC):
    """A store under test: ``ex`` (stateful) and the raw operations beside it."""

    #: Short label for tables ("memory", "redis", "postgresql"...).
    kind: str
    #: Raw driver and the commands it sends, for the table's header.
    raw_label: str

    def __init__(self, url: str) -> None:
        """Remember ``url``; nothing is opened before `open`."""
        self.url = url
        self.tag = uuid.uuid4().hex[:8]
        self._ex: StatefulExecutor | None = None

    @property
    def ex(self) -> StatefulExecutor:
        """The executor under test (after `open`)."""
        assert self._ex is not None, "call open() first"
        return self._ex

    @abstractmethod
    async def open(self) -> None:
        """Connect both sides; create the raw side's table or keys space."""

    @abstractmethod
    async def close(self) -> None:
        """Delete what both sides wrote, close both sides."""

    # -- the raw side: the minimal equivalent of each operation ------------------

    @abstractmethod
    async def raw_get(self, uid: str) -> object:
        """Read one link."""

    @abstractmethod
    async def raw_set(self, uid: str, pod: int) -> object:
        """Write one permanent link (and its owner index), returning the previous pod."""

    @abstractmethod
    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """Create a link only if absent."""

    @abstractmethod
    async def raw_expire(self, uid: str, seconds: int) -> object:
        """Give an existing link a lifetime."""

    @abstractmethod
    async def raw_batch(self, uids: list[str]) -> object:
        """Read many links in one request."""

    @abstractmethod
    async def raw_owner(self, uid: str) -> object:
        """Read every link of one uid."""

    @abstractmethod
    async def raw_set_state(self, pod: int, state: str) -> object:
        """Write one pod state."""

    @abstractmethod
    async def raw_get_states(self) -> object:
        """Read every pod state of the service."""

    @abstractmethod
    async def raw_set_workload(self, state: str) -> object:
        """Write one workload state."""

    @abstractmethod
    async def raw_get_workloads(self, names: list[str]) -> object:
        """Read several workload states."""

    # -- scale runs ----------------------------------------------------------------

    def now_ms(self) -> int:
        """Wall-clock milliseconds (what the store's clock reads, give or take)."""
        return _now_ms()

    async def store_bytes(self) -> int | None:
        """Bytes the store uses now (None if it cannot tell)."""
        return None

    def store_bytes_source(self) -> str:
        """How `store_bytes` measures."""
        return "n/a"


class MemoryTarget(Target):
    """``memory://`` against a dict behind ``async def``."""

    kind = "memory"
    raw_label = "dict behind async def"

    async def open(self) -> None:
        """Build the executor and the dicts."""
        self._ex = stateful.connect(self.url)
        self.links: dict[str, int] = {}
        self.owners: dict[str, dict[str, int]] = {}
        self.states: dict[int, str] = {}
        self.workloads: dict[str, str] = {}

    async def close(self) -> None:
        """Close the executor."""
        await self.ex.aclose()

    async def raw_get(self, uid: str) -> object:
        """Look the uid up in a dict."""
        return self.links.get(uid)

    async def raw_set(self, uid: str, pod: int) -> object:
        """Swap the dict entry and the owner's entry."""
        previous = self.links.get(uid)
        self.links[uid] = pod
        self.owners.setdefault(uid, {})[SVC] = pod
        return previous

    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """Call dict.setdefault."""
        return self.links.setdefault(uid, pod)

    async def raw_expire(self, uid: str, seconds: int) -> object:
        """Drop the owner entry (the link becomes temporary)."""
        self.owners.get(uid, {}).pop(SVC, None)
        return uid in self.links

    async def raw_batch(self, uids: list[str]) -> object:
        """Look each uid up."""
        get = self.links.get
        return [get(uid) for uid in uids]

    async def raw_owner(self, uid: str) -> object:
        """Copy of the uid's dict."""
        return dict(self.owners.get(uid, {}))

    async def raw_set_state(self, pod: int, state: str) -> object:
        """Set a dict entry."""
        self.states[pod] = state
        return None

    async def raw_get_states(self) -> object:
        """Copy a dict."""
        return dict(self.states)

    async def raw_set_workload(self, state: str) -> object:
        """Set a dict entry."""
        self.workloads[SVC] = state
        return None

    async def raw_get_workloads(self, names: list[str]) -> object:
        """Look each name up."""
        return {name: self.workloads[name] for name in names if name in self.workloads}

    async def store_bytes(self) -> int | None:
        """Resident set size of this process (the memory backend lives in it)."""
        return _rss()

    def store_bytes_source(self) -> str:
        """RSS."""
        return "process RSS delta"


def _rss() -> int:
    # Reading /proc is instant (no disk); ru_maxrss (a peak) is the fallback elsewhere.
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Minimal set_linked_pod a hand-written Redis router would send: swap the link,
# keep the uid's permanent-link hash (get_link_service) in step, return the
# previous pod. Two keys in one hash slot (both tagged with the uid).
_RAW_SET_LUA = """
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return previous
"""


class RedisTarget(Target):
    """Redis (standalone or Cluster) against raw redis-py."""

    kind = "redis"
    raw_label = "redis-py: GET, MGET, EVALSHA (2 keys), SET NX, PEXPIRE, HSET, HGETALL, HMGET"

    async def open(self) -> None:
        """Build the executor (fresh prefix) and a raw redis-py client."""
        self.prefix = f"stateful-bench:{self.tag}:"
        self.cluster = "+cluster" in self.url.partition("://")[0]
        self._ex = stateful.connect(self.url, prefix=self.prefix)
        self.client: Any = _raw_redis(self.url)
        self.sha = await self.client.script_load(_RAW_SET_LUA)
        if self.cluster:
            self.kind = "redis-cluster"

    def _link(self, uid: str) -> str:
        return f"{self.prefix}raw:{{{uid}}}:{SVC}"

    def _owner(self, uid: str) -> str:
        return f"{self.prefix}raw:{{{uid}}}:perm"

    async def close(self) -> None:
        """Delete every key under the prefix (both sides), close both clients."""
        try:
            await delete_redis_prefix(self.client, self.prefix)
        finally:
            await self.ex.aclose()
            await self.client.aclose()

    async def raw_get(self, uid: str) -> object:
        """GET."""
        return await self.client.get(self._link(uid))

    async def raw_set(self, uid: str, pod: int) -> object:
        """EVALSHA of the minimal 2-key script."""
        return await self.client.evalsha(self.sha, 2, self._link(uid), self._owner(uid), pod, SVC)

    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """SET NX GET."""
        return await self.client.set(self._link(uid), pod, nx=True, get=True)

    async def raw_expire(self, uid: str, seconds: int) -> object:
        """PEXPIRE."""
        return await self.client.pexpire(self._link(uid), seconds * 1000)

    async def raw_batch(self, uids: list[str]) -> object:
        """MGET (on a cluster: redis-py splits it by slot)."""
        keys = [self._link(uid) for uid in uids]
        if self.cluster:
            return await self.client.mget_nonatomic(keys)
        return await self.client.mget(keys)

    async def raw_owner(self, uid: str) -> object:
        """HGETALL."""
        return await self.client.hgetall(self._owner(uid))

    async def raw_set_state(self, pod: int, state: str) -> object:
        """HSET."""
        return await self.client.hset(f"{self.prefix}raw:{{{SVC}}}:pods", str(pod), state)

    async def raw_get_states(self) -> object:
        """HGETALL."""
        return await self.client.hgetall(f"{self.prefix}raw:{{{SVC}}}:pods")

    async def raw_set_workload(self, state: str) -> object:
        """HSET."""
        return await self.client.hset(f"{self.prefix}raw:{{{NS}}}:workloads", SVC, state)

    async def raw_get_workloads(self, names: list[str]) -> object:
        """HMGET."""
        return await self.client.hmget(f"{self.prefix}raw:{{{NS}}}:workloads", names)

    async def store_bytes(self) -> int | None:
        """INFO memory used_memory (summed over a cluster's primaries)."""
        if self.cluster:
            info = await self.client.info("memory", target_nodes=self.client.PRIMARIES)
            return sum(int(node["used_memory"]) for node in info.values())
        return int((await self.client.info("memory"))["used_memory"])

    def store_bytes_source(self) -> str:
        """INFO memory."""
        return "INFO memory used_memory delta"


def _raw_redis(url: str) -> Any:
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.cluster import ClusterNode

    scheme, _, rest = url.partition("://")
    if "+cluster" not in scheme:
        return Redis.from_url(url)
    parts = urlsplit(f"{scheme.replace('+cluster', '')}://{rest}")
    nodes = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        nodes.append(ClusterNode(host or host_port, int(port or 6379)))
    return RedisCluster(
        startup_nodes=nodes,
        username=parts.username,
        password=parts.password,
        ssl=scheme.startswith("rediss"),
    )


async def delete_redis_prefix(client: Any, prefix: str) -> int:
    """UNLINK every key under ``prefix`` (on a cluster, on every primary), in chunks."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += await _unlink(client, batch)
            batch = []
    if batch:
        deleted += await _unlink(client, batch)
    return deleted


async def _unlink(client: Any, keys: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        # execute_command: a cluster pipeline refuses the named multi-key methods.
        pipe.execute_command("UNLINK", key)
    return sum(int(n) for n in await pipe.execute())


class SQLTarget(Target):
    """A SQL database: the backend over fresh tables, and the bare driver beside it.

    The raw side keeps its own minimal table ``<prefix>raw``: a text key, the
    owner, the pod and the expiry, with the owner indexed; reads are one
    ``SELECT`` (with the liveness test), writes one upsert.
    """

    async def open(self) -> None:
        """Create stateful's tables (Alembic) and the raw table, then connect both."""
        from stateful.backends.sql import migrate_url

        self.prefix = f"bench_{self.tag}_"
        await migrate_url(self.url, table_prefix=self.prefix)
        self._ex = stateful.connect(self.url, table_prefix=self.prefix)
        self.raw_table = f"{self.prefix}raw"
        self.raw_states = f"{self.prefix}raw_states"
        await self.open_raw()

    @abstractmethod
    async def open_raw(self) -> None:
        """Connect the driver and create the raw tables."""

    @abstractmethod
    async def raw_execute(self, sql: str, *args: Any) -> Any:
        """Run one statement on the raw side (setup and teardown)."""

    async def tables(self) -> list[str]:
        """Every table under this run's prefix (stateful's and the raw ones)."""
        from sqlalchemy import inspect

        engine = self._engine()
        try:
            async with engine.connect() as conn:
                names: list[str] = await conn.run_sync(
                    lambda sync: inspect(sync).get_table_names()
                )
        finally:
            await engine.dispose()
        return [name for name in names if name.startswith(self.prefix)]

    def _engine(self) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine

        return create_async_engine(self.url)

    async def close(self) -> None:
        """Drop every table of this run, close both sides."""
        try:
            await self.ex.aclose()
            for name in await self.tables():
                await self.raw_execute(f"DROP TABLE IF EXISTS {name}")
        finally:
            await self.close_raw()

    @abstractmethod
    async def close_raw(self) -> None:
        """Close the raw driver."""

    def _key(self, uid: str) -> str:
        return f"{NS}/{uid}/{SVC}"


class PostgresTarget(SQLTarget):
    """PostgreSQL against an asyncpg pool (10 connections, asyncpg's default)."""

    kind = "postgresql"
    raw_label = "asyncpg pool: one SELECT / one INSERT … ON CONFLICT"

    async def open_raw(self) -> None:
        """Open an asyncpg pool; create the raw tables."""
        import asyncpg

        u = urlsplit(self.url)
        self.pool = await asyncpg.create_pool(
            host=u.hostname,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            database=u.path.lstrip("/") or None,
            min_size=1,
            max_size=10,
        )
        t, s = self.raw_table, self.raw_states
        await self.pool.execute(
            f"CREATE TABLE {t} (k text PRIMARY KEY, owner text NOT NULL,"
            " svc text NOT NULL, pod int NOT NULL, expires_at bigint)"
        )
        await self.pool.execute(f"CREATE INDEX ix_{t}_owner ON {t} (owner)")
        await self.pool.execute(
            f"CREATE TABLE {s} (svc text, pod int, state text NOT NULL, PRIMARY KEY (svc, pod))"
        )
        live = "(expires_at IS NULL OR expires_at > $2)"
        self.q_get = f"SELECT pod FROM {t} WHERE k = $1 AND {live}"
        self.q_set = (
            f"INSERT INTO {t} (k, owner, svc, pod, expires_at) VALUES ($1, $2, $3, $4, NULL)"
            " ON CONFLICT (k) DO UPDATE SET pod = EXCLUDED.pod, expires_at = NULL"
        )
        self.q_set_nx = (
            f"INSERT INTO {t} (k, owner, svc, pod) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (k) DO NOTHING"
        )
        self.q_expire = f"UPDATE {t} SET expires_at = $2 WHERE k = $1"
        self.q_batch = f"SELECT k, pod FROM {t} WHERE k = ANY($1) AND {live}"
        self.q_owner = f"SELECT svc, pod FROM {t} WHERE owner = $1 AND expires_at IS NULL"
        self.q_set_state = (
            f"INSERT INTO {s} (svc, pod, state) VALUES ($1, $2, $3)"
            " ON CONFLICT (svc, pod) DO UPDATE SET state = EXCLUDED.state"
        )
        self.q_get_states = f"SELECT pod, state FROM {s} WHERE svc = $1"
        self.q_get_workloads = f"SELECT svc, state FROM {s} WHERE svc = ANY($1) AND pod = -1"

    async def raw_execute(self, sql: str, *args: Any) -> Any:
        """pool.execute."""
        return await self.pool.execute(sql, *args)

    async def close_raw(self) -> None:
        """Close the pool (terminate: nothing is in flight)."""
        await self.pool.close()

    async def raw_get(self, uid: str) -> object:
        """One SELECT."""
        return await self.pool.fetchval(self.q_get, self._key(uid), _now_ms())

    async def raw_set(self, uid: str, pod: int) -> object:
        """One upsert."""
        return await self.pool.execute(self.q_set, self._key(uid), uid, SVC, pod)

    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """INSERT … ON CONFLICT DO NOTHING."""
        return await self.pool.execute(self.q_set_nx, self._key(uid), uid, SVC, pod)

    async def raw_expire(self, uid: str, seconds: int) -> object:
        """One UPDATE."""
        return await self.pool.execute(self.q_expire, self._key(uid), _now_ms() + seconds * 1000)

    async def raw_batch(self, uids: list[str]) -> object:
        """SELECT … = ANY($1)."""
        return await self.pool.fetch(self.q_batch, [self._key(u) for u in uids], _now_ms())

    async def raw_owner(self, uid: str) -> object:
        """SELECT by the owner index."""
        return await self.pool.fetch(self.q_owner, uid)

    async def raw_set_state(self, pod: int, state: str) -> object:
        """One upsert."""
        return await self.pool.execute(self.q_set_state, SVC, pod, state)

    async def raw_get_states(self) -> object:
        """One SELECT."""
        return await self.pool.fetch(self.q_get_states, SVC)

    async def raw_set_workload(self, state: str) -> object:
        """One upsert (pod -1 row stands for the workload)."""
        return await self.pool.execute(self.q_set_state, SVC, -1, state)

    async def raw_get_workloads(self, names: list[str]) -> object:
        """One SELECT."""
        return await self.pool.fetch(self.q_get_workloads, names)

    async def store_bytes(self) -> int | None:
        """pg_total_relation_size (table, indexes, TOAST) of stateful's tables."""
        total = 0
        async with self.pool.acquire() as conn:
            for name in await self.tables():
                if name.startswith(self.raw_table):
                    continue
                total += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
        return total

    def store_bytes_source(self) -> str:
        """pg_total_relation_size."""
        return "pg_total_relation_size (table + indexes) delta"


class SQLiteTarget(SQLTarget):
    """SQLite (a file, WAL) against one aiosqlite connection."""

    kind = "sqlite"
    raw_label = "aiosqlite: one SELECT / one upsert + commit"

    async def open_raw(self) -> None:
        """Open aiosqlite on the same file (WAL, like the backend); create the raw tables."""
        import aiosqlite

        database = urlsplit(self.url).path
        self.path = database[1:] if database.startswith("/") else database
        self.conn = await aiosqlite.connect(self.path or ":memory:")
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=NORMAL")
        await self.conn.execute("PRAGMA busy_timeout=30000")
        t, s = self.raw_table, self.raw_states
        await self.conn.execute(
            f"CREATE TABLE {t} (k TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " svc TEXT NOT NULL, pod INTEGER NOT NULL, expires_at INTEGER)"
        )
        await self.conn.execute(f"CREATE INDEX ix_{t}_owner ON {t} (owner)")
        await self.conn.execute(
            f"CREATE TABLE {s} (svc TEXT, pod INTEGER, state TEXT NOT NULL, PRIMARY KEY (svc, pod))"
        )
        await self.conn.commit()
        live = "(expires_at IS NULL OR expires_at > ?)"
        self.q_get = f"SELECT pod FROM {t} WHERE k = ? AND {live}"
        self.q_set = (
            f"INSERT INTO {t} (k, owner, svc, pod, expires_at) VALUES (?, ?, ?, ?, NULL)"
            " ON CONFLICT (k) DO UPDATE SET pod = excluded.pod, expires_at = NULL"
        )
        self.q_set_nx = (
            f"INSERT INTO {t} (k, owner, svc, pod) VALUES (?, ?, ?, ?) ON CONFLICT (k) DO NOTHING"
        )
        self.q_expire = f"UPDATE {t} SET expires_at = ? WHERE k = ?"
        self.q_owner = f"SELECT svc, pod FROM {t} WHERE owner = ? AND expires_at IS NULL"
        self.q_set_state = (
            f"INSERT INTO {s} (svc, pod, state) VALUES (?, ?, ?)"
            " ON CONFLICT (svc, pod) DO UPDATE SET state = excluded.state"
        )
        self.q_get_states = f"SELECT pod, state FROM {s} WHERE svc = ?"

    async def raw_execute(self, sql: str, *args: Any) -> Any:
        """Execute and commit."""
        await self.conn.execute(sql, args)
        await self.conn.commit()

    async def close_raw(self) -> None:
        """Close the connection."""
        await self.conn.close()

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.conn.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def _write(self, sql: str, *args: Any) -> int:
        cursor = await self.conn.execute(sql, args)
        await self.conn.commit()
        return cursor.rowcount

    async def raw_get(self, uid: str) -> object:
        """One SELECT."""
        return await self._fetch(self.q_get, self._key(uid), _now_ms())

    async def raw_set(self, uid: str, pod: int) -> object:
        """Upsert + commit."""
        return await self._write(self.q_set, self._key(uid), uid, SVC, pod)

    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """INSERT … DO NOTHING + commit."""
        return await self._write(self.q_set_nx, self._key(uid), uid, SVC, pod)

    async def raw_expire(self, uid: str, seconds: int) -> object:
        """UPDATE + commit."""
        return await self._write(self.q_expire, _now_ms() + seconds * 1000, self._key(uid))

    async def raw_batch(self, uids: list[str]) -> object:
        """SELECT … IN (?, ?, …)."""
        marks = ",".join("?" * len(uids))
        live = "(expires_at IS NULL OR expires_at > ?)"
        sql = f"SELECT k, pod FROM {self.raw_table} WHERE k IN ({marks}) AND {live}"
        return await self._fetch(sql, *[self._key(u) for u in uids], _now_ms())

    async def raw_owner(self, uid: str) -> object:
        """SELECT by the owner index."""
        return await self._fetch(self.q_owner, uid)

    async def raw_set_state(self, pod: int, state: str) -> object:
        """Upsert + commit."""
        return await self._write(self.q_set_state, SVC, pod, state)

    async def raw_get_states(self) -> object:
        """One SELECT."""
        return await self._fetch(self.q_get_states, SVC)

    async def raw_set_workload(self, state: str) -> object:
        """Upsert + commit."""
        return await self._write(self.q_set_state, SVC, -1, state)

    async def raw_get_workloads(self, names: list[str]) -> object:
        """One SELECT."""
        marks = ",".join("?" * len(names))
        sql = f"SELECT svc, state FROM {self.raw_states} WHERE pod = -1 AND svc IN ({marks})"
        return await self._fetch(sql, *names)

    async def store_bytes(self) -> int | None:
        """Database file size (page_count * page_size; the tables share the file)."""
        rows = await self._fetch("PRAGMA page_count")
        size = await self._fetch("PRAGMA page_size")
        return int(rows[0][0]) * int(size[0][0])

    def store_bytes_source(self) -> str:
        """Pages."""
        return "database pages (page_count * page_size) delta"


class MariaDBTarget(SQLTarget):
    """MariaDB / MySQL against an asyncmy pool (10 connections, autocommit)."""

    kind = "mariadb"
    raw_label = "asyncmy pool: one SELECT / one INSERT … ON DUPLICATE KEY UPDATE"

    async def open_raw(self) -> None:
        """Open an asyncmy pool; create the raw tables."""
        import asyncmy

        u = urlsplit(self.url)
        self.pool = await asyncmy.create_pool(
            host=u.hostname,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            db=u.path.lstrip("/") or None,
            autocommit=True,
            minsize=1,
            maxsize=10,
        )
        t, s = self.raw_table, self.raw_states
        await self.raw_execute(
            f"CREATE TABLE {t} (k VARCHAR(255) PRIMARY KEY, owner VARCHAR(255) NOT NULL,"
            " svc VARCHAR(255) NOT NULL, pod INT NOT NULL, expires_at BIGINT NULL,"
            " INDEX (owner)) ENGINE=InnoDB"
        )
        await self.raw_execute(
            f"CREATE TABLE {s} (svc VARCHAR(255), pod INT, state VARCHAR(255) NOT NULL,"
            " PRIMARY KEY (svc, pod)) ENGINE=InnoDB"
        )
        live = "(expires_at IS NULL OR expires_at > %s)"
        self.q_get = f"SELECT pod FROM {t} WHERE k = %s AND {live}"
        self.q_set = (
            f"INSERT INTO {t} (k, owner, svc, pod, expires_at) VALUES (%s, %s, %s, %s, NULL)"
            " ON DUPLICATE KEY UPDATE pod = VALUES(pod), expires_at = NULL"
        )
        self.q_set_nx = f"INSERT IGNORE INTO {t} (k, owner, svc, pod) VALUES (%s, %s, %s, %s)"
        self.q_expire = f"UPDATE {t} SET expires_at = %s WHERE k = %s"
        self.q_owner = f"SELECT svc, pod FROM {t} WHERE owner = %s AND expires_at IS NULL"
        self.q_set_state = (
            f"INSERT INTO {s} (svc, pod, state) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE state = VALUES(state)"
        )
        self.q_get_states = f"SELECT pod, state FROM {s} WHERE svc = %s"

    async def _run(self, sql: str, *args: Any) -> list[Any]:
        async with self.pool.acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, args)
            return list(await cursor.fetchall() or ())

    async def raw_execute(self, sql: str, *args: Any) -> Any:
        """One statement."""
        return await self._run(sql, *args)

    async def close_raw(self) -> None:
        """Close the pool."""
        self.pool.close()
        await self.pool.wait_closed()

    async def raw_get(self, uid: str) -> object:
        """One SELECT."""
        return await self._run(self.q_get, self._key(uid), _now_ms())

    async def raw_set(self, uid: str, pod: int) -> object:
        """One upsert."""
        return await self._run(self.q_set, self._key(uid), uid, SVC, pod)

    async def raw_set_nx(self, uid: str, pod: int) -> object:
        """INSERT IGNORE."""
        return await self._run(self.q_set_nx, self._key(uid), uid, SVC, pod)

    async def raw_expire(self, uid: str, seconds: int) -> object:
        """One UPDATE."""
        return await self._run(self.q_expire, _now_ms() + seconds * 1000, self._key(uid))

    async def raw_batch(self, uids: list[str]) -> object:
        """SELECT … IN (…)."""
        marks = ",".join(["%s"] * len(uids))
        live = "(expires_at IS NULL OR expires_at > %s)"
        sql = f"SELECT k, pod FROM {self.raw_table} WHERE k IN ({marks}) AND {live}"
        return await self._run(sql, *[self._key(u) for u in uids], _now_ms())

    async def raw_owner(self, uid: str) -> object:
        """SELECT by the owner index."""
        return await self._run(self.q_owner, uid)

    async def raw_set_state(self, pod: int, state: str) -> object:
        """One upsert."""
        return await self._run(self.q_set_state, SVC, pod, state)

    async def raw_get_states(self) -> object:
        """One SELECT."""
        return await self._run(self.q_get_states, SVC)

    async def raw_set_workload(self, state: str) -> object:
        """One upsert."""
        return await self._run(self.q_set_state, SVC, -1, state)

    async def raw_get_workloads(self, names: list[str]) -> object:
        """One SELECT."""
        marks = ",".join(["%s"] * len(names))
        sql = f"SELECT svc, state FROM {self.raw_states} WHERE pod = -1 AND svc IN ({marks})"
        return await self._run(sql, *names)

    async def store_bytes(self) -> int | None:
        """information_schema data_length + index_length after ANALYZE TABLE."""
        total = 0
        for name in await self.tables():
            if name.startswith(self.raw_table):
                continue
            await self._run(f"ANALYZE TABLE {name}")
            rows = await self._run(
                "SELECT data_length + index_length FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_name = %s",
                name,
            )
            total += int(rows[0][0]) if rows else 0
        return total

    def store_bytes_source(self) -> str:
        """information_schema."""
        return "information_schema data_length + index_length delta (InnoDB estimate)"


def target_for(url: str) -> Target:
    """Pick the `Target` class for ``url``'s scheme."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryTarget(url)
    if scheme.startswith(("redis", "rediss", "unix")):
        return RedisTarget(url)
    if scheme.startswith("sqlite"):
        return SQLiteTarget(url)
    if scheme.startswith(("postgresql", "postgres")):
        return PostgresTarget(url)
    if scheme.startswith(("mysql", "mariadb")):
        return MariaDBTarget(url)
    raise ValueError(f"stateful bench: no benchmark target for URL scheme {scheme!r}")
