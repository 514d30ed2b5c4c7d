"""The keys file: tenants' API keys, stored as keyed hashes only, written by ``gate keys`` and read by the server.

A key looks like ``gk_<id>.<secret>``: ``id`` is 8 hex digits, public (``gate keys list`` shows it, ``revoke``
takes it), ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits). The file holds, per key, its id, its
tenant, when it was made and ``HMAC-SHA256(salt, key)``; the salt is random per file::

    # written by `gate keys`: hashes of API keys, never the keys
    salt: 3b0c...            # 32 hex digits, made with the file
    keys:
    - id: 9f2c41d0
      tenant: acme
      created: '2026-12-05T19:02:11Z'
      hmac_sha256: 5e1b...

Why a fast keyed hash and not bcrypt/scrypt/argon2: those slow hashes exist to protect passwords, which people
choose from a small space. A generated key has 256 random bits, so a stolen file cannot be brute-forced at any hash
speed, while a slow hash would cost every request its deliberate slowness in CPU (and hand an attacker a cheap way
to burn it; docs/security.md has the numbers measured here). The per-file salt as the HMAC key means a hash from
one deployment's file says nothing about another's, and no table computed in advance applies. The id in the key
finds its entry without trying every hash; the digests are then compared in constant time
(``hmac.compare_digest``), and a key with an unknown id is hashed and compared all the same, so the time taken does
not say whether an id exists beyond what its listing already says (ids are not secrets).

Why a separate file and not the config: ``gate keys`` rewrites this file whole (atomically: a temporary file,
then ``os.replace``), and rewriting the operator's own YAML would drop its comments and layout. The file is
created mode 0600. A lock file next to it serialises concurrent ``gate keys`` commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.config import TENANT_NAME_PATTERN
from gate.errors import ConfigError

KEY_PREFIX = "gk_"
KEY_ID_PATTERN = r"^[0-9a-f]{8}$"
HEADER = "# written by `gate keys`: hashes of API keys (HMAC-SHA256 with this file's salt), never the keys\n"
_DUMMY_DIGEST = "0" * 64


class StoredKey(BaseModel):
    """One key's entry: what identifies it and its hash, never the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN)
    tenant: str = Field(pattern=TENANT_NAME_PATTERN)
    created: str
    hmac_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class KeyFile(BaseModel):
    """The whole file: the salt and the keys, by id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str = Field(pattern=r"^[0-9a-f]{32,128}$")
    keys: tuple[StoredKey, ...] = ()

    @classmethod
    def new(cls) -> KeyFile:
        """An empty file with a fresh salt."""
        return cls(salt=secrets.token_hex(16))

    def digest(self, key: str) -> str:
        """``HMAC-SHA256(salt, key)`` as hex."""
        return hmac.new(bytes.fromhex(self.salt), key.encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def match(self, key: str) -> StoredKey | None:
        """The entry of ``key`` if it is one of these keys (constant-time comparison of the digests)."""
        entry = self.by_id().get(key_id(key) or "")
        expected = entry.hmac_sha256 if entry is not None else _DUMMY_DIGEST
        matches = hmac.compare_digest(self.digest(key), expected)
        return entry if matches and entry is not None else None

    def by_id(self) -> dict[str, StoredKey]:
        """The entries by key id."""
        return {entry.id: entry for entry in self.keys}

    def added(self, tenant: str) -> tuple[KeyFile, str, StoredKey]:
        """This file with a new key for ``tenant``, the key itself (shown once) and its entry."""
        taken = self.by_id()
        ident = secrets.token_hex(4)
        while ident in taken:
            ident = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{ident}.{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        entry = StoredKey(id=ident, tenant=tenant, created=created, hmac_sha256=self.digest(key))
        return self.model_copy(update={"keys": (*self.keys, entry)}), key, entry

    def revoked(self, ident: str) -> tuple[KeyFile, StoredKey]:
        """This file without the key ``ident``, and its entry; a ``ConfigError`` when there is no such key."""
        entry = self.by_id().get(ident)
        if entry is None:
            known = ", ".join(sorted(self.by_id())) or "none"
            raise ConfigError(f"no key with id {ident!r} (ids here: {known}); `gate keys list` shows them")
        return self.model_copy(update={"keys": tuple(k for k in self.keys if k.id != ident)}), entry


def key_id(key: str) -> str | None:
    """The id part of a key in this module's format, else ``None``."""
    if not key.startswith(KEY_PREFIX):
        return None
    ident, dot, secret = key[len(KEY_PREFIX) :].partition(".")
    return ident if dot and secret and re.fullmatch(KEY_ID_PATTERN, ident) else None


def read_keys(path: Path) -> KeyFile:
    """The keys file at ``path`` (empty when it does not exist yet); a ``ConfigError`` naming it when it is bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return KeyFile.new()
    except OSError as exc:
        raise ConfigError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    try:
        data: Any = yaml.safe_load(text)
        return KeyFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the keys file {path} is not YAML: {' '.join(str(exc).split())}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the keys file {path} is malformed: {problems}") from None


def write_keys(path: Path, keys: KeyFile) -> None:
    """Replace the file at ``path`` with ``keys`` atomically (temporary file in the same folder, fsync, rename)."""
    body = HEADER + yaml.safe_dump(keys.model_dump(mode="json"), sort_keys=False)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file, so two ``gate keys`` commands do not lose an update."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
