"""NATS decentralized (JWT) authentication for the tests, minted in Python.

- :class:`Identity`: an NKEY pair and the JWT its issuer signed for it.
- :func:`mint_operator`, :func:`mint_account`, :func:`mint_user`: a
  self-signed operator, an account the operator signs (JetStream on, no
  limits), a user the account signs (no permission limits).
- :func:`creds_text`: a user's ``.creds`` file, in the format ``nsc``
  writes and the NATS clients read.
- :class:`PrivateNatsJwtServer`: a :class:`private_nats.PrivateNatsServer`
  in operator mode (``resolver: MEMORY``, the accounts preloaded, a system
  account of its own), so that only users of those accounts get in::

      operator = mint_operator("test")
      account = mint_account("app", operator)
      with PrivateNatsJwtServer(operator, [account]) as server:
          path.write_text(creds_text(mint_user("alice", account)))

A JWT here is what nats-io/jwt v2 (nats-server 2.9) decodes:
``base64url(header).base64url(claims).base64url(signature)``, without
padding, the header ``{"typ":"JWT","alg":"ed25519-nkey"}``, the signature
the issuer's ed25519 signature of the first two parts. The server checks
the signature and that the issuer is a key of the expected kind (operator
for accounts, account for users), not the ``jti``; it is made as the real
tooling makes it anyway (base32 of a hash of the claims without it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import nkeys

from private_nats import PrivateNatsServer

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_NO_LIMIT = -1


@dataclass(frozen=True)
class Identity:
    """An operator, account or user: its keys and its JWT."""

    name: str
    seed: str
    public_key: str
    jwt: str

    def key_pair(self) -> nkeys.KeyPair:
        return nkeys.from_seed(self.seed.encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _new_seed(prefix: int) -> tuple[str, str]:
    """A fresh NKEY seed of the given kind, and its public key."""
    seed = nkeys.encode_seed(os.urandom(32), prefix).decode()
    return seed, nkeys.from_seed(seed.encode()).public_key.decode()


def encode_jwt(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    """Sign ``claims`` (``jti`` and ``iat`` are added) with the issuer's key."""
    claims = {**claims, "iat": int(time.time()), "iss": issuer.public_key.decode()}
    claims.pop("jti", None)
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    signed = (_b64url(json.dumps(_HEADER, separators=(",", ":")).encode()) + "."
              + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    return signed + "." + _b64url(issuer.sign(signed.encode()))


def decode_claims(jwt: str) -> dict[str, Any]:
    """The claims of a JWT (not verified)."""
    part = jwt.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def mint_operator(name: str, system_account: str | None = None) -> Identity:
    """A self-signed operator (naming its system account, if given)."""
    seed, public = _new_seed(nkeys.PREFIX_BYTE_OPERATOR)
    nats: dict[str, Any] = {"type": "operator", "version": 2}
    if system_account:
        nats["system_account"] = system_account
    jwt = encode_jwt({"sub": public, "name": name, "nats": nats},
                     nkeys.from_seed(seed.encode()))
    return Identity(name, seed, public, jwt)


def _account_limits(jetstream: bool) -> dict[str, Any]:
    limits: dict[str, Any] = {"subs": _NO_LIMIT, "data": _NO_LIMIT, "payload": _NO_LIMIT,
                              "imports": _NO_LIMIT, "exports": _NO_LIMIT, "wildcards": True,
                              "conn": _NO_LIMIT, "leaf": _NO_LIMIT}
    if jetstream:
        limits.update({"mem_storage": _NO_LIMIT, "disk_storage": _NO_LIMIT,
                       "streams": _NO_LIMIT, "consumer": _NO_LIMIT})
    return limits


def mint_account(name: str, operator: Identity, jetstream: bool = True,
                 seed: str | None = None) -> Identity:
    """An account signed by ``operator``; JetStream on without limits unless
    ``jetstream`` is false (the system account must not have it)."""
    if seed is None:
        seed, public = _new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
    else:
        public = nkeys.from_seed(seed.encode()).public_key.decode()
    nats = {"type": "account", "version": 2, "limits": _account_limits(jetstream)}
    jwt = encode_jwt({"sub": public, "name": name, "nats": nats}, operator.key_pair())
    return Identity(name, seed, public, jwt)


def mint_user(name: str, account: Identity) -> Identity:
    """A user signed by ``account``, allowed everything."""
    seed, public = _new_seed(nkeys.PREFIX_BYTE_USER)
    nats = {"type": "user", "version": 2, "pub": {}, "sub": {},
            "subs": _NO_LIMIT, "data": _NO_LIMIT, "payload": _NO_LIMIT}
    jwt = encode_jwt({"sub": public, "name": name, "nats": nats}, account.key_pair())
    return Identity(name, seed, public, jwt)


def creds_text(user: Identity, seed: str | None = None) -> str:
    """A ``.creds`` file for ``user`` (with another ``seed``, to test refusals)."""
    return ("-----BEGIN NATS USER JWT-----\n"
            f"{user.jwt}\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{seed or user.seed}\n"
            "------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


class PrivateNatsJwtServer(PrivateNatsServer):
    """One private nats-server trusting ``operator``, knowing ``accounts``
    (and a system account minted here); JetStream on; ``extra`` is added to
    its configuration. The operator JWT is a file of the server's folder."""

    def __init__(self, operator: Identity, accounts: list[Identity],
                 extra: str = "") -> None:
        self.operator = operator
        self.system = mint_account("SYS", operator, jetstream=False)
        preload = ", ".join(f"{account.public_key}: {account.jwt}"
                            for account in [self.system, *accounts])
        self._trust = (f"system_account: {self.system.public_key}\n"
                       f"resolver: MEMORY\nresolver_preload: {{ {preload} }}\n")
        super().__init__(self._trust + extra)

    def _write_config(self, index: int) -> None:
        operator_file = self.base / "operator.jwt"
        operator_file.write_text(self.operator.jwt + "\n")
        # called once, from __init__, when the folder exists
        self.extra = f'operator: "{operator_file}"\n' + self.extra
        super()._write_config(index)
