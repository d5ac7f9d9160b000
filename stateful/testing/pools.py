"""Identifier pools seeded with the pairs that real stores confuse.

Every example of the state machine draws its namespaces, uids, services and
states from pools that always hold, for each collision class, two different
identifiers a careless store would map to one key: case variants, trailing
spaces, canonically equivalent Unicode (NFC and NFD), a prefix followed by a
separator, a literal escape sequence next to the character it escapes, and
identifiers at the length limit that differ only in their last character.
A store that aliases any pair shows up as two links sharing one value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from stateful.validation import MAX_NAMESPACE, MAX_SERVICE_NAME, MAX_STATE, MAX_UID

#: The collision classes, in the order the statistics report them.
CLASSES = ("case", "space", "unicode", "prefix", "escape", "length")

SEPARATORS = (":", "/", "|", ".", "{", "}", "\\", "-", "_", " ", "\x1f", "#")
ESCAPES = (("%3A", ":"), ("%25", "%"), ("\\:", ":"), ("\\\\", "\\"), ("%20", " "), ("&amp;", "&"))

_hostile_text = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs"], exclude_characters="\x00", max_codepoint=0x1F64F
    ),
    min_size=1,
    max_size=6,
)


@dataclass
class Pools:
    """The identifiers of one example, and which collision class each belongs to."""

    namespaces: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    #: identifier -> collision class, for the statistics.
    classes: dict[str, str] = field(default_factory=dict)

    def add(self, pool: list[str], pair: tuple[str, ...], kind: str) -> None:
        """Add both members of a colliding pair to ``pool`` (once each)."""
        for item in pair:
            if item not in pool:
                pool.append(item)
                self.classes.setdefault(item, kind)


def _pair(kind: str, base: str, limit: int, data: st.DataObject) -> tuple[str, str]:
    if kind == "case":
        return base, base.upper() if base != base.upper() else base.lower()
    if kind == "space":
        return base, base + data.draw(st.sampled_from((" ", "\t", "\u00a0")), label="space")
    if kind == "unicode":
        return base + "\u00e9", base + "e\u0301"  # NFC é and NFD e + combining acute
    if kind == "escape":
        escaped, plain = data.draw(st.sampled_from(ESCAPES), label="escape")
        return base + escaped, base + plain
    if kind == "length":
        # Both at the limit, differing only in the last character: truncation aliases them.
        return base * (limit - 1) + "a", base * (limit - 1) + "b"
    raise ValueError(kind)


def draw_pools(data: st.DataObject, *, max_random: int = 1) -> Pools:
    """Draw one example's pools: every collision class present, plus a little random text."""
    pools = Pools()
    # Half the examples use ":", the separator most key formats use.
    sep = data.draw(st.sampled_from((":",) * (len(SEPARATORS) - 1) + SEPARATORS), label="separator")
    # ("a", "c<sep>s") and ("a<sep>c", "s") alias under a naive join of namespace and uid;
    # ("c", "s<sep>s") and ("c<sep>s", "s") under a join of uid and service.
    pools.add(pools.namespaces, ("a", f"a{sep}c"), "prefix")
    pools.add(pools.uids, ("s", "c", f"c{sep}s"), "prefix")
    pools.add(pools.services, ("s", f"s{sep}s"), "prefix")
    pools.add(pools.namespaces, _pair("case", "n", MAX_NAMESPACE, data), "case")
    pools.add(pools.services, _pair("case", "v", MAX_SERVICE_NAME, data), "case")
    for kind in CLASSES:
        if kind != "prefix":
            pools.add(pools.uids, _pair(kind, "u", MAX_UID, data), kind)
    # The escape most key formats use, always; _pair drew one more at random.
    pools.add(pools.uids, ("u%3A", "u:"), "escape")
    # One more class in each of namespaces and services, varying per example.
    extra = ("space", "unicode", "escape", "length")
    pools.add(
        pools.namespaces,
        _pair(data.draw(st.sampled_from(extra), label="ns_class"), "m", MAX_NAMESPACE, data),
        "namespace-extra",
    )
    # Services always have a pair at the length limit (a column or index width truncates).
    pools.add(pools.services, _pair("length", "w", MAX_SERVICE_NAME, data), "length")
    pools.add(pools.states, ("ready", "Ready"), "case")
    pools.add(pools.states, ("draining", "draining "), "space")
    pools.add(pools.states, _pair("length", "x", MAX_STATE, data), "length")
    for pool in (pools.namespaces, pools.uids, pools.services):
        for text in data.draw(st.lists(_hostile_text, max_size=max_random), label="random"):
            if text not in pool:
                pool.append(text)
    return pools
