"""Fixed-size row keys: SHA-256 digests of an injective encoding of identifiers.

Identifiers may be up to 1,024 characters of any Unicode, so a primary key over
the real columns would not fit the index key limits of MariaDB (3,072 bytes)
or PostgreSQL (about 2,700 bytes per B-tree entry). Rows are therefore keyed
by a 32-byte digest computed here, in Python, and the real columns are kept
beside it for reading.

Each part is UTF-8 encoded and preceded by its byte length (4 bytes, big
endian), and each kind of key starts with its own tag, so two different tuples
never have the same encoding. Two different tuples share a key only if SHA-256
collides, which no one has ever produced. Lookups compare digests as bytes, so
case, trailing spaces and Unicode normalisation never alias two identifiers,
whatever the database's collation.
"""

from __future__ import annotations

from hashlib import sha256

DIGEST_SIZE = 32


def _encode(tag: bytes, *parts: str) -> bytes:
    chunks = [tag]
    for part in parts:
        data = part.encode("utf-8")
        chunks.append(len(data).to_bytes(4, "big"))
        chunks.append(data)
    return b"".join(chunks)


def link_key(namespace: str, uid: str, service: str) -> bytes:
    """Key of the link ``(namespace, uid, service)``."""
    return sha256(_encode(b"link", namespace, uid, service)).digest()


def owner_key(namespace: str, uid: str) -> bytes:
    """Key shared by all links of one uid in one namespace (for `get_link_service`)."""
    return sha256(_encode(b"owner", namespace, uid)).digest()


def service_key(namespace: str, service: str) -> bytes:
    """Key of a service in a namespace (pod states and workload state)."""
    return sha256(_encode(b"service", namespace, service)).digest()
