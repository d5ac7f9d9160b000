"""The Redis key layout: a prefix, a hash tag, then the kind of key.

=============================  ==========================================  ======
key                            holds                                       type
=============================  ==========================================  ======
``P{ns:uid}:link:svc``         the link of (uid, service): ``pod`` when     string
                               permanent, ``pod:expires_ms`` when temporary
``P{ns:uid}:perm``             the uid's permanent links, service → pod     hash
``P{ns:svc}:pods``             the pod states of a service, pod → state     hash
``P{ns}:workload``             the workload states, service → state         hash
=============================  ==========================================  ======

``P`` is the configurable prefix (default ``stateful:``), which may not
contain braces. Inside the braces and after them every identifier is encoded
by `encode`: ``%``, ``{``, ``}`` and ``:`` become ``%25``, ``%7B``, ``%7D``,
``%3A``. So the first ``{`` of a key ends the prefix, the first ``}`` ends the
hash tag, and ``:`` separates parts; no identifier can move a key to another
slot or make two tuples share a key. The two keys a link script touches carry
the same tag ``{ns:uid}`` and so live in one hash slot.

Keys are built as UTF-8 `bytes`, independent of the client's encoding settings.
"""

from __future__ import annotations

from redis.crc import key_slot

from stateful.errors import ValidationError

DEFAULT_PREFIX = "stateful:"

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", ":": "%3A"})


def encode(identifier: str) -> str:
    """Escape ``identifier`` so it holds no brace and no colon (injective)."""
    return identifier.translate(_ESCAPES)


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

    def link(self, namespace: str, uid: str, service_name: str) -> bytes:
        """Key of the link of ``uid`` to a pod of ``service_name``."""
        return self._key(f"{encode(namespace)}:{encode(uid)}", f"link:{encode(service_name)}")

    def links(self, namespace: str, uids: list[str], service_name: str) -> list[bytes]:
        """Keys of the links of many uids to one service (as `link`, encoding the rest once)."""
        head = f"{self.prefix}{{{encode(namespace)}:"
        tail = f"}}:link:{encode(service_name)}"
        return [f"{head}{encode(uid)}{tail}".encode() for uid in uids]

    def permanent_links(self, namespace: str, uid: str) -> bytes:
        """Key of the hash service → pod of ``uid``'s permanent links (same slot as its links)."""
        return self._key(f"{encode(namespace)}:{encode(uid)}", "perm")

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
