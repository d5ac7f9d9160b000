"""Our RESP packer of the fast call path writes what redis-py's packer writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from stateful.backends.redis.client import _pack

ARGS = st.lists(
    st.one_of(
        st.binary(max_size=300),
        st.text(st.characters(codec="utf-8"), max_size=300),
        st.integers(min_value=-(2**63), max_value=2**63),
    ),
    max_size=12,
)


@given(name=st.sampled_from(["EVALSHA", "GET", "HGETALL", "CONFIG GET"]), args=ARGS)
def test_pack_matches_redis_py(name: str, args: list[bytes | str | int]) -> None:
    connection = Connection()
    command = (name, *args)
    packed = _pack(connection, command)
    expected = b"".join(connection.pack_command(*command))
    assert (packed if isinstance(packed, bytes) else b"".join(packed)) == expected


def test_other_encodings_and_types_use_redis_py() -> None:
    latin = Connection(encoding="latin-1")
    assert _pack(latin, ("SET", "k", "é")) == latin.pack_command("SET", "k", "é")
    plain = Connection()
    assert _pack(plain, ("SET", "k", 1.5)) == plain.pack_command("SET", "k", 1.5)
