"""What every SQL dialect shares: prebuilt statements and the operations over them.

A `Dialect` turns one backend operation into as few statements as its
database allows, given an open connection, and frames the transaction it runs
in (`Dialect.run`); `SQLBackend` owns retries, keys and time. Statements are
SQLAlchemy Core constructs built once per backend with named bind parameters,
so SQLAlchemy compiles each once per dialect and then serves it from its
statement cache.

The operations are written against SQLAlchemy's synchronous `Connection`, and
`Dialect.run` runs a whole transaction (checkout, BEGIN, statements, COMMIT,
return to the pool) in one greenlet: the async API would spawn a greenlet per
checkout, statement and close, and shield the close in a task of its own,
which together cost about as much as a statement on a local database.

The link statements rely on one SQL idiom: in ``INSERT ... ON CONFLICT DO
UPDATE`` (PostgreSQL, SQLite) and ``INSERT ... ON DUPLICATE KEY UPDATE``
(MariaDB, MySQL), the ``SET`` expressions see the existing row, which the
database has locked. `try_set_assignments` and `if_absent_assignments` encode
the decision of an operation in those expressions, so the upsert is the whole
operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple, TypeVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Delete,
    Insert,
    Integer,
    LargeBinary,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from stateful.backend import waiting_for_connection
from stateful.clock import Clock
from stateful.errors import PoolExhausted

from ..engines import in_autocommit, uses_single_connection
from ..errors import RetryTransaction
from ..schema import Tables

T = TypeVar("T")
W = TypeVar("W")  # what a transaction function is given to run

# Rows per IN (...) list where a dialect cannot bind an array: below SQLite's
# 32,766 variables and small enough for MariaDB's packet limit.
IN_CHUNK = 500


class LinkId(NamedTuple):
    """A link's identifiers and the keys derived from them."""

    key: bytes
    owner: bytes
    service_key: bytes
    namespace: str
    uid: str
    service: str


def is_live(expires_at: int | None, now: int) -> bool:
    """Apply the contract's liveness rule: permanent, or not yet expired."""
    return expires_at is None or now < expires_at


def overwrite_for(row: Any, pod: int, ttl: int | None) -> tuple[bool, bool]:
    """Which columns overwriting ``row`` (pod, live, expires_at) with ``pod``/``ttl`` changes.

    Keys `Dialect.update_link`. A link with a lifetime gets a new deadline
    on every write; a permanent one made permanent again keeps its NULL.
    """
    return row[0] != pod, ttl is not None or row[2] is not None


class Dialect:
    """Statements and operations for one database family; subclasses specialise.

    The defaults here are portable: they work on every supported database as
    long as the transaction they run in serialises writers to one row (row
    locks on PostgreSQL and MariaDB, ``BEGIN IMMEDIATE`` on SQLite).
    """

    #: Operations that are exactly one statement on this dialect; the backend
    #: may run them outside an explicit transaction where that saves round trips.
    single_statement: ClassVar[frozenset[str]] = frozenset(
        {
            "set_service_state",
            "get_service_state",
            "set_workload_state",
            "get_linked_pod",
            "get_linked_pod_if_persist",
            "remove_linked_pod",
            "get_link_service",
            "get_link_info",
            "pod_links_page",
            "count_pod_links",
            "remove_service_state",
            "purge",
        }
    )

    #: Operations (executor method names) that are cancel-safe here: one
    #: atomic statement whose connection is discarded if the call is
    #: interrupted (see `stateful.Backend.cancel_safe_operations`). Empty by
    #: default: every call then runs in the executor's shielded task.
    cancel_safe_operations: frozenset[str] = frozenset()

    #: Operations whose ``now`` the dialect reads from the clock itself, inside
    #: the transaction (`run_timed`); the backend reads it for the others.
    late_clock: frozenset[str] = frozenset()

    #: Keys per statement of a batch read (an ``IN (...)`` list); None: one
    #: statement for any number (the dialect binds them as one array).
    batch_size: ClassVar[int | None] = IN_CHUNK

    #: Upserts of one pod state and one workload state (built by each subclass).
    upsert_pod_state: Insert
    upsert_workload_state: Insert

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the statements for ``tables``; ``engine`` is used for transactions.

        ``server_clock``: statements read the time from the database server
        (`server_now`) instead of a ``now`` bind parameter the backend fills
        from its `Clock`.
        """
        self.engine = engine
        self.server_clock = server_clock
        #: The engine's synchronous face, which `run` uses inside its greenlet.
        self.sync_engine: Engine = engine.sync_engine
        self.tables = tables
        self.turn = asyncio.Lock() if uses_single_connection(engine) else None
        self.explicit = in_autocommit(engine)
        self.purge_batch_size = purge_batch_size
        links = tables.links
        c = links.c
        #: The current time in milliseconds, as the statements see it.
        self.now: ColumnElement[int] = (
            self.server_now() if server_clock else bindparam("now", type_=BigInteger)
        )
        self.pod = bindparam("b_pod", type_=Integer)
        # Lifetimes travel as milliseconds (NULL: permanent) and deadlines are
        # computed in SQL, so one clock (the server's, or the bound ``now``)
        # decides both the deadline and every liveness check.
        self.ttl = bindparam("b_ttl", type_=BigInteger)
        self.expires_at: ColumnElement[int] = self.now + self.ttl  # NULL + n is NULL
        self.live: ColumnElement[bool] = or_(c.expires_at.is_(None), c.expires_at > self.now)
        key = c.link_key == bindparam("b_link_key", type_=LargeBinary)

        self.select_link_locked: Select[Any] = (
            select(c.pod, self.live.label("live"), c.expires_at).where(key).with_for_update()
        )
        self.select_link_info: Select[Any] = select(c.pod, c.expires_at, c.updated_at).where(
            key, self.live
        )
        self.select_live_pod: Select[Any] = select(c.pod).where(key, self.live)
        self.select_permanent_pod: Select[Any] = select(c.pod).where(key, c.expires_at.is_(None))
        self.select_permanent_links: Select[Any] = select(c.service, c.pod).where(
            c.owner_key == bindparam("b_owner_key", type_=LargeBinary), c.expires_at.is_(None)
        )
        #: VALUES of a new link row, shared by the plain insert and the upserts.
        self.link_values: dict[str, Any] = {
            "link_key": bindparam("b_link_key"),
            "owner_key": bindparam("b_owner_key"),
            "namespace": bindparam("b_namespace"),
            "uid": bindparam("b_uid"),
            "service": bindparam("b_service"),
            "pod": self.pod,
            "expires_at": self.expires_at,
            "service_key": bindparam("b_service_key"),
            "updated_at": self.now,
        }
        self.insert_link: Insert = insert(links).values(**self.link_values)
        #: Overwrites of a link row by (pod changes, expiry changes): each SETs
        #: only what changes, because SQLite rewrites every index holding a
        #: SET column even when its value stays (re-setting a permanent link
        #: to its pod costs a third of the full UPDATE; see `overwrite_for`).
        self.update_link: dict[tuple[bool, bool], Update] = {
            (pod, expiry): update(links)
            .where(key)
            .values(
                updated_at=self.now,
                **({"pod": self.pod} if pod else {}),
                **({"expires_at": self.expires_at} if expiry else {}),
            )
            for pod in (False, True)
            for expiry in (False, True)
        }
        # Removal: one statement each, the live check in the WHERE clause, so the
        # database re-checks it on the row version it locks.
        with_pod = c.pod == self.pod
        self.delete_live: Delete = delete(links).where(key, self.live)
        self.delete_live_with_pod: Delete = delete(links).where(key, self.live, with_pod)
        self.keep_live: Update = (
            update(links)
            .where(key, self.live)
            .values(expires_at=self.expires_at, updated_at=self.now)
        )
        self.keep_live_with_pod: Update = (
            update(links)
            .where(key, self.live, with_pod)
            .values(expires_at=self.expires_at, updated_at=self.now)
        )
        # place_linked_pod without a pod: refresh a live link as if_absent would.
        self.refresh_live: Update = (
            update(links)
            .where(key, self.live)
            .ordered_values(
                *[(name, value) for name, value in self.if_absent_assignments() if name != "pod"]
            )
        )

        # A pod's links: the index (service_key, pod, link_key, expires_at).
        in_service = c.service_key == bindparam("b_service_key", type_=LargeBinary)
        after = c.link_key > bindparam("b_after", type_=LargeBinary)
        self.select_pod_page: Select[Any] = (
            select(c.link_key, c.uid)
            .where(in_service, c.pod == self.pod, after, self.live)
            .order_by(c.link_key)
            .limit(bindparam("b_limit", type_=Integer))
        )
        self.select_pod_page_keys: Select[Any] = (
            select(c.link_key)
            .where(in_service, c.pod == self.pod, after, self.live)
            .order_by(c.link_key)
            .limit(bindparam("b_limit", type_=Integer))
        )
        self.count_links: Select[Any] = (
            select(c.pod, func.count()).where(in_service, self.live).group_by(c.pod)
        )
        page_keys: BindParameter[Any] = bindparam("page", expanding=True)
        in_page = and_(c.link_key.in_(page_keys), self.live, with_pod)
        self.delete_page: Delete = delete(links).where(in_page)
        self.keep_page: Update = (
            update(links).where(in_page).values(expires_at=self.expires_at, updated_at=self.now)
        )

        # Batch reads: one prebuilt statement whose IN list SQLAlchemy expands
        # per call (same SQL text as an inline list, but built and cached once).
        keys: BindParameter[Any] = bindparam("keys", expanding=True)
        self.select_live_batch: Select[Any] = select(c.link_key, c.pod).where(
            c.link_key.in_(keys), self.live
        )
        w = tables.workload_states
        self.select_workloads: Select[Any] = select(w.c.service_key, w.c.state).where(
            w.c.service_key.in_(keys)
        )

        pods = tables.pod_states
        pod_key = pods.c.service_key == bindparam("b_service_key", type_=LargeBinary)
        self.state_live: ColumnElement[bool] = or_(
            pods.c.expires_at.is_(None), pods.c.expires_at > self.now
        )
        self.select_pod_states: Select[Any] = select(pods.c.pod, pods.c.state).where(
            pod_key, self.state_live
        )
        self.delete_pod_state: Delete = delete(pods).where(
            pod_key, pods.c.pod == self.pod, self.state_live
        )
        self.purge_states: Delete = delete(pods).where(pods.c.expires_at <= self.now)
        self.state_row: dict[str, BindParameter[Any]] = {
            "service_key": bindparam("b_service_key"),
            "namespace": bindparam("b_namespace"),
            "service": bindparam("b_service"),
            "state": bindparam("b_state"),
        }
        #: VALUES of a pod state row (the upserts add ``state``'s conflict rule).
        self.pod_state_values: dict[str, Any] = {
            **self.state_row,
            "pod": bindparam("b_pod"),
            "expires_at": self.expires_at,
        }
        # The two conditional link writes: one upsert each, deciding in SET.
        self.try_set_statement = self.link_upsert(self.try_set_assignments())
        self.if_absent_statement = self.link_upsert(self.if_absent_assignments())

    def server_now(self) -> ColumnElement[int]:
        """Return the database server's current time in milliseconds, as SQL (per dialect)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read the server's clock")

    # -- the SET clauses that make an upsert the whole operation -----------------------

    def try_set_assignments(self) -> list[tuple[str, ColumnElement[Any]]]:
        """SET clause of `try_set_linked_pod`: keep a live permanent link to another pod.

        Listed pod first: MariaDB applies assignments left to right, each seeing
        the ones before; the ``expires_at`` condition is right either way (after
        the first assignment, ``pod <> :pod`` still holds exactly when blocked).
        """
        c = self.tables.links.c
        blocked = and_(c.expires_at.is_(None), c.pod != self.pod)
        return [
            ("updated_at", case((blocked, c.updated_at), else_=self.now)),
            ("pod", case((blocked, c.pod), else_=self.pod)),
            ("expires_at", case((blocked, c.expires_at), else_=self.expires_at)),
        ]

    def if_absent_assignments(self) -> list[tuple[str, ColumnElement[Any]]]:
        """SET clause of `set_linked_pod_if_absent`: keep a live pod, refresh a temporary link.

        A permanent link is always live and stays permanent (its ``updated_at``
        too); an expired one is replaced. ``updated_at`` comes first, since it
        reads ``expires_at`` and MariaDB applies assignments left to right;
        the ``expires_at`` expression does not read ``pod``.
        """
        c = self.tables.links.c
        return [
            ("updated_at", case((c.expires_at.is_(None), c.updated_at), else_=self.now)),
            ("pod", case((self.live, c.pod), else_=self.pod)),
            ("expires_at", case((c.expires_at.is_(None), c.expires_at), else_=self.expires_at)),
        ]

    # -- transactions ----------------------------------------------------------------------
    #
    # Two modes. On an engine in AUTOCOMMIT (the engines `from_url` builds), the
    # dialect frames transactions itself: a lone statement runs on its own (it
    # is a transaction by itself, with no BEGIN/COMMIT round trips), and
    # several run between BEGIN and COMMIT statements. On any other engine
    # (one the application passed in), SQLAlchemy frames them as usual.

    async def run(self, work: Callable[[Connection], T], *, write: bool, single: bool) -> T:
        """Run ``work(connection)`` as one transaction; commit if it returns.

        ``write`` tells whether it writes; ``single`` that it issues one
        statement. An exception (a cancellation included: it is thrown into
        the greenlet) rolls the transaction back. Checkout, framing and
        statements all run in one greenlet (see the module docstring). On an
        engine whose checkouts share one connection (SQLite ``:memory:``),
        transactions take turns.
        """
        return await self.in_turn(self._transaction, work, write, single)

    async def in_turn(
        self,
        transaction: Callable[[W, bool, bool], T],
        work: W,
        write: bool,
        single: bool,
    ) -> T:
        """Run ``transaction(work, write, single)`` in one greenlet, in its turn (`turn_for`)."""
        turn = self.turn_for(write=write)
        if turn is None:
            return await greenlet_spawn(transaction, work, write, single)
        # Waiting for the turn is waiting for the one connection (or SQLite's
        # one writer): nothing was sent yet, so a timeout here is PoolExhausted.
        with waiting_for_connection():
            await turn.acquire()
        try:
            return await greenlet_spawn(transaction, work, write, single)
        finally:
            turn.release()

    async def run_timed(
        self,
        body: Callable[[Connection, int], T],
        clock: Clock,
        *,
        write: bool,
        single: bool,
    ) -> T:
        """As `run`, for ``body(connection, now)`` of an operation in `late_clock`.

        The dialect reads ``now`` from ``clock`` once the transaction holds
        what serialises it; by default when it has its connection.
        """
        return await self.run(lambda conn: body(conn, clock.now_ms()), write=write, single=single)

    def _transaction(self, work: Callable[[Connection], T], write: bool, single: bool) -> T:
        with self.open(write=write, single=single) as conn:
            return work(conn)

    async def settle(self) -> None:
        """Wait for what the engine's connections still do once it is disposed (nothing here)."""

    def turn_for(self, *, write: bool) -> asyncio.Lock | None:
        """Return the lock a transaction must hold before it takes a connection, if any."""
        return self.turn

    def checkout(self, engine: Engine) -> Connection:
        """Take a connection from ``engine``'s pool, waiting at most its ``pool_timeout``.

        The wait is marked (`stateful.backend.waiting_for_connection`), so an
        executor timeout there is `PoolExhausted`; so is the pool's own limit.
        """
        try:
            with waiting_for_connection():
                return engine.connect()
        except sa_exc.TimeoutError as exc:
            raise PoolExhausted(
                f"no connection of the SQL pool became free in time ({exc}); nothing was sent"
            ) from exc

    @contextmanager
    def open(self, *, write: bool, single: bool) -> Iterator[Connection]:
        """Check out a connection and frame the transaction (see the two modes above)."""
        with self.checkout(self.sync_engine) as conn:
            if not self.explicit:
                self.managed_begin(conn, write=write, single=single)
                yield conn
                conn.commit()
            elif single and self.lone_statement_ok(write=write):
                yield conn
            else:
                self.begin(conn, write=write)
                try:
                    yield conn
                except BaseException:
                    self.abort(conn)
                    raise
                self.commit(conn)

    def lone_statement_ok(self, *, write: bool) -> bool:
        """Tell whether one statement may run without BEGIN/COMMIT around it."""
        return True

    def managed_begin(self, conn: Connection, *, write: bool, single: bool) -> None:
        """Prepare a transaction that SQLAlchemy frames (nothing by default)."""

    def begin(self, conn: Connection, *, write: bool) -> None:
        """Start a transaction on an autocommit connection."""
        conn.exec_driver_sql("BEGIN")

    def commit(self, conn: Connection) -> None:
        """Commit the transaction `begin` started."""
        conn.exec_driver_sql("COMMIT")

    def rollback(self, conn: Connection) -> None:
        """Roll back the transaction `begin` started."""
        conn.exec_driver_sql("ROLLBACK")

    def abort(self, conn: Connection) -> None:
        """Roll back after a failure; a connection that cannot roll back is discarded."""
        try:
            self.rollback(conn)
        except Exception:
            conn.invalidate()

    # -- pod and workload states -------------------------------------------------------------

    def get_service_state(self, conn: Connection, service_key: bytes, now: int) -> dict[int, str]:
        """Return pod → live state of a service."""
        params = {"b_service_key": service_key, "now": now}
        result = conn.execute(self.select_pod_states, params)
        return {pod: state for pod, state in result}

    def set_workload_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """Upsert one workload state; ``row`` has service_key, namespace, service, state."""
        raise NotImplementedError

    def get_workload_state(
        self, conn: Connection, service_keys: Sequence[bytes]
    ) -> dict[bytes, str]:
        """Return service key → workload state for the keys that have one."""
        found: dict[bytes, str] = {}
        for part in self.batches(service_keys):
            found.update(conn.execute(self.select_workloads, {"keys": part}).all())
        return found

    # -- batch reads -------------------------------------------------------------------------

    def batches(self, keys: Sequence[bytes]) -> list[list[bytes]]:
        """Split ``keys`` into the lists that the statements of one batch read bind."""
        size = self.batch_size
        if size is None:
            return [list(keys)]
        return [list(keys[i : i + size]) for i in range(0, len(keys), size)]

    def is_single(self, operation: str) -> bool:
        """Tell whether ``operation`` is one statement here (see `single_statement`)."""
        return operation in self.single_statement

    def single_batch(self, count: int) -> bool:
        """Tell whether a batch read of ``count`` keys takes one statement."""
        return self.batch_size is None or count <= self.batch_size

    # -- links ---------------------------------------------------------------------------------

    def link_params(self, link: LinkId, pod: int, ttl: int | None, now: int) -> dict[str, Any]:
        """Bind parameters naming ``link``, its new pod and lifetime (ms, None: permanent)."""
        return {
            "b_link_key": link.key,
            "b_owner_key": link.owner,
            "b_service_key": link.service_key,
            "b_namespace": link.namespace,
            "b_uid": link.uid,
            "b_service": link.service,
            "b_pod": pod,
            "b_ttl": ttl,
            "now": now,
        }

    def set_linked_pod(
        self, conn: Connection, link: LinkId, pod: int, ttl: int | None, now: int
    ) -> int | None:
        """Lock the row, remember its live pod, overwrite it (or insert it)."""
        row = conn.execute(self.select_link_locked, {"b_link_key": link.key, "now": now}).first()
        params = self.link_params(link, pod, ttl, now)
        if row is None:
            self.insert_absent(conn, params)
            return None
        conn.execute(self.update_link[overwrite_for(row, pod, ttl)], params)
        previous: int = row.pod
        return previous if row.live else None

    def insert_absent(self, conn: Connection, params: dict[str, Any]) -> None:
        """Insert a row the transaction found absent.

        If a concurrent transaction inserted it meanwhile, the duplicate key
        error is retryable (`errors.is_retryable`): the retry finds the row.
        """
        conn.execute(self.insert_link, params)

    def try_set_linked_pod(
        self, conn: Connection, link: LinkId, pod: int, ttl: int | None, now: int
    ) -> tuple[bool, int]:
        """One upsert deciding in SQL; the resulting pod tells whether it linked."""
        linked = self.upsert_link(conn, self.try_set_statement, link, pod, ttl, now)
        return linked == pod, linked

    def set_linked_pod_if_absent(
        self, conn: Connection, link: LinkId, pod: int, ttl: int | None, now: int
    ) -> int:
        """One upsert deciding in SQL; return the pod now linked."""
        return self.upsert_link(conn, self.if_absent_statement, link, pod, ttl, now)

    def place_linked_pod(
        self, conn: Connection, link: LinkId, pod: int | None, ttl: int | None, now: int
    ) -> int | None:
        """Keep (refreshing) a live link, else link to ``pod``; None: refresh only.

        With a pod this is exactly `set_linked_pod_if_absent`. Without one,
        lock the row, and refresh it if it is a live temporary link.
        """
        if pod is not None:
            return self.set_linked_pod_if_absent(conn, link, pod, ttl, now)
        return self.refresh_link(conn, link, ttl, now)

    def refresh_link(self, conn: Connection, link: LinkId, ttl: int | None, now: int) -> int | None:
        """Refresh a live link as `set_linked_pod_if_absent` would; return its pod or None."""
        row = conn.execute(self.select_link_locked, {"b_link_key": link.key, "now": now}).first()
        if row is None or not row.live:
            return None
        if row.expires_at is not None:
            conn.execute(self.refresh_live, self.link_params(link, row.pod, ttl, now))
        pod: int = row.pod
        return pod

    def link_upsert(self, assignments: list[tuple[str, Any]]) -> Insert:
        """Return this database's upsert of a link row with ``assignments`` on conflict."""
        raise NotImplementedError

    def upsert_link(
        self,
        conn: Connection,
        statement: Insert,
        link: LinkId,
        pod: int,
        ttl: int | None,
        now: int,
    ) -> int:
        """Run an upsert of the link and return the pod stored afterwards."""
        params = self.link_params(link, pod, ttl, now)
        stored = conn.execute(statement, params).scalar_one_or_none()
        if stored is None:  # pragma: no cover - an upsert always leaves the row
            raise RetryTransaction("the upsert left no row")
        return int(stored)

    def get_linked_pod(self, conn: Connection, key: bytes, now: int) -> int | None:
        """Return the live link's pod."""
        params = {"b_link_key": key, "now": now}
        pod: int | None = conn.execute(self.select_live_pod, params).scalar_one_or_none()
        return pod

    def get_link_info(self, conn: Connection, key: bytes, now: int) -> Any:
        """Return the live link's ``(pod, expires_at, updated_at)`` row, or None."""
        return conn.execute(self.select_link_info, {"b_link_key": key, "now": now}).first()

    def get_linked_pod_if_persist(self, conn: Connection, key: bytes) -> int | None:
        """Return the pod of a permanent link (always live)."""
        params = {"b_link_key": key}
        pod: int | None = conn.execute(self.select_permanent_pod, params).scalar_one_or_none()
        return pod

    def batch_get_linked_pod(
        self, conn: Connection, keys: Sequence[bytes], now: int
    ) -> dict[bytes, int]:
        """Return link key → pod for the live links among ``keys``."""
        found: dict[bytes, int] = {}
        for part in self.batches(keys):
            found.update(conn.execute(self.select_live_batch, {"keys": part, "now": now}).all())
        return found

    def remove_linked_pod(
        self,
        conn: Connection,
        key: bytes,
        keep_ttl: int | None,
        pod: int | None,
        now: int,
    ) -> bool:
        """Delete the live link, or keep it ``keep_ttl`` ms more; only if its pod is ``pod``.

        Returns whether a live (matching) link was there.
        """
        params: dict[str, Any] = {"b_link_key": key, "now": now}
        if pod is not None:
            params["b_pod"] = pod
        if keep_ttl is None:
            stmt: Delete | Update = self.delete_live if pod is None else self.delete_live_with_pod
        else:
            params["b_ttl"] = keep_ttl
            stmt = self.keep_live if pod is None else self.keep_live_with_pod
        result = conn.execute(stmt, params)
        return bool(result.rowcount)

    def get_link_service(self, conn: Connection, owner: bytes) -> dict[str, int]:
        """Return service → pod of a uid's permanent links."""
        result = conn.execute(self.select_permanent_links, {"b_owner_key": owner})
        return {service: pod for service, pod in result}

    # -- pods --------------------------------------------------------------------------------------

    def set_service_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """Upsert one pod state; ``row`` has the keys of `pod_state_values`' parameters."""
        conn.execute(self.upsert_pod_state, row)

    def remove_service_state(
        self, conn: Connection, service_key: bytes, pod: int, now: int
    ) -> bool:
        """Delete a pod's state; True if it was live (an expired one is purged later)."""
        params = {"b_service_key": service_key, "b_pod": pod, "now": now}
        return bool(conn.execute(self.delete_pod_state, params).rowcount)

    def pod_links_page(
        self, conn: Connection, service_key: bytes, pod: int, after: bytes, limit: int, now: int
    ) -> list[tuple[bytes, str]]:
        """Return up to ``limit`` ``(link_key, uid)`` of the pod's live links after ``after``."""
        params = self.pod_page_params(service_key, pod, after, limit, now)
        return [(key, uid) for key, uid in conn.execute(self.select_pod_page, params)]

    @staticmethod
    def pod_page_params(
        service_key: bytes, pod: int, after: bytes, limit: int, now: int
    ) -> dict[str, Any]:
        """Bind parameters of `select_pod_page`."""
        return {
            "b_service_key": service_key,
            "b_pod": pod,
            "b_after": after,
            "b_limit": limit,
            "now": now,
        }

    def count_pod_links(self, conn: Connection, service_key: bytes, now: int) -> dict[int, int]:
        """Return live links per pod of the service (``GROUP BY pod`` over the pod index)."""
        result = conn.execute(self.count_links, {"b_service_key": service_key, "now": now})
        return {pod: count for pod, count in result}

    def remove_pod_links_page(
        self,
        conn: Connection,
        service_key: bytes,
        pod: int,
        keep_ttl: int | None,
        after: bytes,
        limit: int,
        now: int,
    ) -> tuple[int, bytes | None]:
        """Remove (or keep ``keep_ttl`` ms) the page of the pod's links after ``after``.

        Reads the page's keys, then deletes or updates those still live on
        ``pod`` in one statement that re-checks both on each row: every link
        is removed exactly as `remove_linked_pod_with_id` would. Returns how
        many were removed and the last key of the page (None: no page).
        """
        params: dict[str, Any] = {
            "b_service_key": service_key,
            "b_pod": pod,
            "b_after": after,
            "b_limit": limit,
            "now": now,
        }
        keys = list(conn.execute(self.select_pod_page_keys, params).scalars())
        if not keys:
            return 0, None
        params["page"] = keys
        if keep_ttl is None:
            removed = conn.execute(self.delete_page, params).rowcount
        else:
            params["b_ttl"] = keep_ttl
            removed = conn.execute(self.keep_page, params).rowcount
        return int(removed), keys[-1] if len(keys) == limit else None

    # -- purging -----------------------------------------------------------------------------------

    def purge_batch(self, conn: Connection, now: int) -> int:
        """Delete at most ``purge_batch_size`` expired links; return how many."""
        raise NotImplementedError
