"""The key layout: injective, slot-preserving, prefix rules (no server needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stateful.backends.redis.keys import KeyLayout, encode, slot_of
from stateful.errors import ValidationError

identifiers = st.text(
    alphabet=st.one_of(
        st.sampled_from("{}:%25 7BDA\t"),
        st.characters(codec="utf-8", exclude_characters="\x00"),
    ),
    min_size=1,
    max_size=12,
)
prefixes = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="{}\x00"),
    max_size=8,
)
_UNESCAPE = {"%25": "%", "%7B": "{", "%7D": "}", "%3A": ":"}


def _decode(part: str) -> str:
    assert not re.search(r"[{}:]", part)
    return re.sub(r"%(25|7B|7D|3A)", lambda m: _UNESCAPE[m.group(0)], part)


def parse(key: bytes, prefix: str) -> tuple[str, ...]:
    """Read a key back into (kind, identifiers…): proves that building keys is injective."""
    text = key.decode()
    assert text.startswith(prefix + "{")
    tag, _, rest = text[len(prefix) + 1 :].partition("}")
    parts = [_decode(p) for p in tag.split(":")]
    if not rest:
        return ("links", *parts)  # the uid's hash: nothing after the tag
    kind, _, tail = rest.removeprefix(":").partition(":")
    if tail:
        parts.append(_decode(tail))
    return (kind, *parts)


@given(prefixes, identifiers, identifiers, identifiers, st.integers(0, 2**31 - 1))
def test_every_key_reads_back_to_its_tuple(
    prefix: str, ns: str, uid: str, svc: str, pod: int
) -> None:
    keys = KeyLayout(prefix)
    assert parse(keys.link_hash(ns, uid), prefix) == ("links", ns, uid)
    assert keys.link_hashes(ns, [uid, ns]) == [keys.link_hash(ns, uid), keys.link_hash(ns, ns)]
    assert keys.link_hash(ns, uid) == f"{keys.link_head(ns)}{encode(uid)}}}".encode()
    assert parse(keys.pod_states(ns, svc), prefix) == ("pods", ns, svc)
    assert parse(keys.workload_states(ns), prefix) == ("workload", ns)
    index, pods, pending, temporary = keys.index_keys(ns, svc, pod)
    assert parse(index, prefix) == ("ix", ns, svc, str(pod))
    assert parse(pods, prefix) == ("ixp", ns, svc)
    assert parse(pending, prefix) == ("ixw", ns, svc)
    assert parse(temporary, prefix) == ("ixt", ns, svc, str(pod))
    assert index.startswith(keys.pod_index(ns, svc) + b":")


@given(prefixes, identifiers, identifiers, identifiers)
def test_a_services_keys_share_one_slot(prefix: str, ns: str, uid: str, svc: str) -> None:
    keys = KeyLayout(prefix)
    slot = slot_of(keys.pod_states(ns, svc))
    assert {slot_of(key) for key in keys.index_keys(ns, svc, 7)} == {slot}
    # The hash tag is exactly the encoded (namespace, uid), whatever the identifiers hold.
    assert slot_of(keys.link_hash(ns, uid)) == slot_of(f"{{{encode(ns)}:{encode(uid)}}}".encode())


def test_known_aliases_stay_apart() -> None:
    keys = KeyLayout("p:")
    pairs = [
        (("a", "b:c"), ("a:b", "c")),
        (("{a}", "c"), ("a", "c")),
        (("a", "%3A"), ("a", ":")),
    ]
    for first, second in pairs:
        assert keys.link_hash(*first) != keys.link_hash(*second)
    assert keys.link_hash("a", "b") == b"p:{a:b}"
    assert keys.link_hash("n:{x}", "u%") == b"p:{n%3A%7Bx%7D:u%25}"
    # A uid named like a service never meets that service's keys: they have a suffix.
    assert keys.link_hash("a", "s") != keys.pod_states("a", "s")


@pytest.mark.parametrize("prefix", ["a{", "}", "x{y}", "\x00"])
def test_prefix_without_braces(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        KeyLayout(prefix)


def test_prefix_must_be_a_string() -> None:
    with pytest.raises(ValidationError, match="prefix"):
        KeyLayout(b"p:")  # type: ignore[arg-type]
