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
    kind, _, tail = rest.removeprefix(":").partition(":")
    parts = [_decode(p) for p in tag.split(":")]
    if tail:
        parts.append(_decode(tail))
    return (kind, *parts)


@given(prefixes, identifiers, identifiers, identifiers)
def test_every_key_reads_back_to_its_tuple(prefix: str, ns: str, uid: str, svc: str) -> None:
    keys = KeyLayout(prefix)
    assert parse(keys.link(ns, uid, svc), prefix) == ("link", ns, uid, svc)
    assert keys.links(ns, [uid, ns], svc) == [keys.link(ns, uid, svc), keys.link(ns, ns, svc)]
    assert parse(keys.permanent_links(ns, uid), prefix) == ("perm", ns, uid)
    assert parse(keys.pod_states(ns, svc), prefix) == ("pods", ns, svc)
    assert parse(keys.workload_states(ns), prefix) == ("workload", ns)


@given(prefixes, identifiers, identifiers, identifiers, identifiers)
def test_a_uids_keys_share_one_slot(prefix: str, ns: str, uid: str, a: str, b: str) -> None:
    keys = KeyLayout(prefix)
    slot = slot_of(keys.permanent_links(ns, uid))
    assert slot_of(keys.link(ns, uid, a)) == slot == slot_of(keys.link(ns, uid, b))
    # The hash tag is exactly the encoded (namespace, uid), whatever the identifiers hold.
    assert slot == slot_of(f"{{{encode(ns)}:{encode(uid)}}}".encode())


def test_known_aliases_stay_apart() -> None:
    keys = KeyLayout("p:")
    pairs = [
        (("a", "b:c", "s"), ("a:b", "c", "s")),
        (("a", "b", "c:s"), ("a", "b:c", "s")),
        (("{a}", "c", "s"), ("a", "c", "s")),
        (("a", "%3A", "s"), ("a", ":", "s")),
    ]
    for first, second in pairs:
        assert keys.link(*first) != keys.link(*second)
    assert keys.link("a", "b", "s") == b"p:{a:b}:link:s"
    assert keys.link("n:{x}", "u%", "s}") == b"p:{n%3A%7Bx%7D:u%25}:link:s%7D"


@pytest.mark.parametrize("prefix", ["a{", "}", "x{y}", "\x00"])
def test_prefix_without_braces(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        KeyLayout(prefix)


def test_prefix_must_be_a_string() -> None:
    with pytest.raises(ValidationError, match="prefix"):
        KeyLayout(b"p:")  # type: ignore[arg-type]
