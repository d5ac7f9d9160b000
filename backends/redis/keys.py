"""The Redis key layout: a prefix, a hash tag, then the kind of key.

=============================  ==========================================  ==========
key                            holds                                       type
=============================  ==========================================  ==========
``P{ns:uid}``                  the uid's links: service → ``pod:updated``  hash
                               (permanent) or ``pod:updated:expires``
``P{ns:svc}:pods``             the pod states of a service: pod →          hash
                               ``:state`` or ``expires:state``
``P{ns:svc}:ix:<pod>``         the pod index: uids linked to the pod       sorted set
                               (score 0; may over-report, never under)
``P{ns:svc}:ixt:<pod>``        standalone: the temporary links among the   sorted set
                               pod's index entries (score: expiry)
``P{ns:svc}:ixp``              the pods of the service that have an index  set
``P{ns:svc}:ixw``              cluster only: pending index steps           sorted set
``P{ns}:workload``             the workload states, service → state        hash
=============================  ==========================================  ==========

``P`` is the configurable prefix (default ``stateful:``), which may not
contain braces. Inside the braces and after them every identifier is encoded
by `encode`: ``%``, ``{``, ``}`` and ``:`` become ``%25``, ``%7B``, ``%7D``,
``%3A``. So the first ``{`` of a key ends the prefix, the first ``}`` ends the
hash tag, and ``:`` separates parts; no identifier can move a key to another
slot or make two tuples share a key. A link script touches one key, the uid's
hash; a service's states and pod indexes share the tag ``{ns:svc}`` and so
one hash slot.

Keys are built as UTF-8 `bytes`, independent of the client's encoding settings.
"""

from __future__ import annotations

import re

from redis.crc import key_slot

from stateful.errors import ValidationError

DEFAULT_PREFIX = "stateful:"

#: What `encode` escapes, and NUL (the separator of `KeyLayout.link_hashes`).
_SPECIAL = "%{}:\x00"
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", ":": "%3A"})
_DECODE = re.compile(r"%(25|7B|7D|3A)")
_DECODED = {"25": "%", "7B": "{", "7D": "}", "3A": ":"}


def encode(identifier: str) -> str:
    """Escape ``identifier`` so it holds no brace and no colon (injective)."""
    return identifier.translate(_ESCAPES)


def decode(encoded: str) -> str:
    """Invert `encode`."""
    return _DECODE.sub(lambda match: _DECODED[match.group(1)], encoded)


def check_prefix(prefix: object) -> str:
    """Accept a key prefix: a `str` without braces (braces would change hash slots)."""
    if not isinstance(prefix, str):
        raise ValidationError("prefix", f"must be a str, not {type(prefix).__name__}")
    if "{" in prefix or "}" in prefix:
        raise ValidationError("prefix", f"must not contain braces, got {prefix!r}")
    if "\x00" in prefix:
        raise ValidationError("prefix", "must not contain NUL")
    return prefix


class KeyLayout:
    """Builds the keys of one store (one prefix)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        """Use ``prefix`` before every key; it must not contain braces."""
        self.prefix = check_prefix(prefix)

    def _key(self, tag: str, rest: str) -> bytes:
        return f"{self.prefix}{{{tag}}}:{rest}".encode()

    def link_hash(self, namespace: str, uid: str) -> bytes:
        """Key of the hash service → link of ``uid`` (all its links, one key)."""
        return f"{self.prefix}{{{encode(namespace)}:{encode(uid)}}}".encode()

    def link_hashes(self, namespace: str, uids: list[str]) -> list[bytes]:
        """Keys of the link hashes of many uids (as `link_hash`, encoding the rest once)."""
        head = self.link_head(namespace)
        plain = "".join(uids)
        if not uids or "\x00" in head or any(char in plain for char in _SPECIAL):
            return [f"{head}{encode(uid)}}}".encode() for uid in uids]
        # No uid needs escaping (the usual case): build every key in one
        # string, encode once and split on NUL, which no part contains
        # (about 10x faster than one f-string and encode per uid).
        whole = head + f"}}\x00{head}".join(uids) + "}"
        return whole.encode().split(b"\x00")

    def link_head(self, namespace: str) -> str:
        """Return the start of every link hash key of ``namespace``: the uid and ``}`` follow."""
        return f"{self.prefix}{{{encode(namespace)}:"

    def pod_index(self, namespace: str, service_name: str) -> bytes:
        """Prefix of the pod index keys of a service: ``:<pod>``, ``p`` or ``w`` follow."""
        return self._key(f"{encode(namespace)}:{encode(service_name)}", "ix")

    def index_keys(self, namespace: str, service_name: str, pod_id: int) -> tuple[bytes, ...]:
        """Return the keys of one pod's index, all in one slot.

        In order: the pod's index, the service's indexed pods, the service's
        pending steps (cluster), the pod's temporary entries (standalone).
        """
        ix = self.pod_index(namespace, service_name)
        pod = str(pod_id).encode()
        return (ix + b":" + pod, ix + b"p", ix + b"w", ix + b"t:" + pod)

    def pod_states(self, namespace: str, service_name: str) -> bytes:
        """Key of the hash pod id → state of one service."""
        return self._key(f"{encode(namespace)}:{encode(service_name)}", "pods")

    def workload_states(self, namespace: str) -> bytes:
        """Key of the hash service → workload state of a namespace."""
        return self._key(encode(namespace), "workload")

    def __repr__(self) -> str:
        return f"KeyLayout(prefix={self.prefix!r})"


def slot_of(key: bytes) -> int:
    """Return the Redis Cluster hash slot of ``key``."""
    return key_slot(key)
