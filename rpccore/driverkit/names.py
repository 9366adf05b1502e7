"""Injective names for brokers: any topic, host or namespace, no collisions.

Topics, hosts and cells are opaque strings: periods, ``#``, ``*``, ``/``,
spaces, anything at all may appear in them, and two different destinations
must never reach the same consumers. A broker, though, restricts the
characters of its queue names and routing keys, and gives some of them a
meaning (``.`` ``*`` ``#`` in AMQP topic exchanges, ``/`` in AMQP 1.0
addresses). A driver that builds names from destinations therefore

1. encodes every part with a :class:`NameEncoding`: characters of its *safe*
   alphabet stand for themselves, every other UTF-8 byte becomes the escape
   character and two hex digits. The escape character is not safe, so the
   encoding is injective and reversible (:meth:`NameEncoding.decode`);
2. joins the encoded parts with a separator that no encoded part contains
   (:meth:`NameEncoding.join`), starting with a *kind* that tells what the
   name is for (work queue, direct queue, fanout key...), so that names of
   different kinds or with a different number of parts never meet;
3. bounds the length (:func:`bounded`): a name over the broker's limit is
   replaced by a digest under a kind that no ordinary name starts with.

Example: the names of a driver whose broker allows ``[A-Za-z0-9_-]`` and
255 bytes::

    from rpccore.driverkit import NameEncoding, bounded

    PARTS = NameEncoding(safe=NameEncoding.ALPHANUMERIC + "_-", escape="%")

    def work_queue(namespace: str, topic: str) -> str:
        return bounded(PARTS.join("w", namespace, topic), 255, "x.w.")

    work_queue("nova", "compute.a#b")    # 'w.nova.compute%2Ea%23b'
"""

from __future__ import annotations

import hashlib
import string

__all__ = ["NameEncoding", "bounded"]


class NameEncoding:
    """An injective encoding of strings into a restricted alphabet.

    :param safe: the characters (ASCII, at least the 16 hex digits of the
        chosen case) that stand for themselves; every other byte of a
        string's UTF-8 form is escaped.
    :param escape: one ASCII character, not in ``safe``, that starts an
        escape (followed by two hex digits).
    :param separator: what :meth:`join` puts between parts; neither safe
        nor the escape, so it never occurs inside an encoded part.
    :param upper: upper-case hex digits in escapes (``%2E``), else lower
        (``_2e``).
    :raises ValueError: the alphabet does not make an injective encoding.
    """

    #: ASCII letters and digits, the usual core of a safe alphabet
    ALPHANUMERIC = string.ascii_letters + string.digits

    def __init__(self, safe: str, escape: str, separator: str = ".", *,
                 upper: bool = True) -> None:
        digits = "0123456789ABCDEF" if upper else "0123456789abcdef"
        if not safe.isascii() or any(d not in safe for d in digits):
            raise ValueError(f"the safe alphabet must be ASCII and hold the digits {digits}")
        if len(escape) != 1 or not escape.isascii() or escape in safe:
            raise ValueError("the escape must be one ASCII character outside the safe alphabet")
        if len(separator) != 1 or separator in safe or separator == escape:
            raise ValueError("the separator must be one character, neither safe nor the escape")
        self.safe = frozenset(safe.encode("ascii"))
        self.escape = escape
        self.separator = separator
        hex_format = "02X" if upper else "02x"
        # one string per byte value, so that encoding is a table look-up
        self._table = [chr(b) if b in self.safe else f"{escape}{b:{hex_format}}"
                       for b in range(256)]

    def encode(self, text: str) -> str:
        """``text`` in the safe alphabet plus escapes. Lone surrogates are
        encoded too (``surrogatepass``), so every ``str`` is accepted."""
        data = text.encode("utf-8", "surrogatepass")
        safe = self.safe
        if all(b in safe for b in data):  # the common case: nothing to escape
            return text
        table = self._table
        return "".join([table[b] for b in data])

    def decode(self, part: str) -> str:
        """The inverse of :meth:`encode` (for tests, tools and log lines).

        :raises ValueError: ``part`` is not an encoded string.
        """
        out = bytearray()
        i = 0
        while i < len(part):
            if part[i] == self.escape:
                out.append(int(part[i + 1:i + 3], 16))
                i += 3
            elif ord(part[i]) in self.safe:
                out.append(ord(part[i]))
                i += 1
            else:
                raise ValueError(f"{part[i]!r} cannot occur in an encoded name")
        return out.decode("utf-8", "surrogatepass")

    def join(self, kind: str, *parts: str) -> str:
        """``kind`` and the encoded ``parts``, separated. ``kind`` is used as
        is: a constant of the driver's that says what the name is for (it
        may hold the separator, as in ``"mydriver.w"``). For one kind,
        different parts give different names, since no encoded part holds
        the separator. Give every kind of a driver the same number of
        segments (``"mydriver.w"``, ``"mydriver.d"``): the kind is then
        always the first segments of a name, and names of two kinds never
        meet."""
        return self.separator.join([kind, *[self.encode(p) for p in parts]])


def bounded(name: str, max_bytes: int, digest_prefix: str) -> str:
    """``name`` if its UTF-8 form fits in ``max_bytes``, else
    ``digest_prefix`` followed by the SHA-256 of ``name`` (64 hex digits).

    Choose a ``digest_prefix`` that no unhashed name starts with (a kind of
    its own), so that a stand-in never equals an ordinary name; SHA-256
    collisions are not a practical concern. ``max_bytes`` must leave room
    for the prefix and 64 digits.
    """
    data = name.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return name
    return digest_prefix + hashlib.sha256(data).hexdigest()
