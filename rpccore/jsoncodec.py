"""JSON to and from bytes: the standard library's rules, orjson's speed.

The standard library's :mod:`json` (configured as the envelope needs it:
compact, UTF-8, no NaN or infinity) defines what is valid. Encoding and
decoding an envelope with it costs several microseconds each, and a call
does both twice, so where orjson is installed (a dependency of rpccore) it
goes first and the standard library is asked only where the two could
disagree:

- encoding: whatever orjson refuses (integers beyond 64 bits, dict keys that
  are not strings, subclasses of str, int, dict and list, datetimes,
  dataclasses, ...), and any output that holds ``null``, since orjson writes
  NaN and infinity as ``null`` where the standard library raises. The
  standard library then encodes it, or raises as it always has.
- decoding: whatever orjson refuses (it is stricter: no NaN literals, no
  lone surrogates, at most 1,024 levels), and any input with a run of 19 or
  more digits, since orjson reads an integer beyond 64 bits as a float
  where the standard library keeps it exact.

What orjson encodes that the standard library refuses: ``uuid.UUID``
(written as its string) and members of a plain ``enum.Enum`` (written as
their value). Everything else comes out as the standard library would
accept it, and decodes to equal values either way.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; kept working without
    orjson = None  # type: ignore[assignment]

_std_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_std_decoder = json.JSONDecoder()

#: Digits become ``0``, so that ``data.translate(...).find(_LONG_DIGITS)``
#: finds a run of 19 digits (the shortest integer that may not fit in 64 bits).
#:
#: The searches below use ``bytes.find``, not ``in``: ``needle in data``
#: first tries ``needle`` as an integer (a byte value) and builds and drops
#: a TypeError before it searches, which costs more than the search itself
#: on an envelope (CPython 3.11 to 3.13).
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS = b"0" * 19


def std_dumps(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON, by the standard library alone.

    :raises TypeError: something in it is not JSON (sets, bytes, objects).
    :raises ValueError: NaN or infinity, or a string that is not valid
        Unicode (a lone surrogate).
    :raises RecursionError: nested too deeply (or circular).
    """
    return _std_encoder.encode(obj).encode("utf-8")


def std_loads(data: bytes) -> Any:
    """Parse JSON bytes by the standard library alone.

    :raises ValueError: not UTF-8, or not JSON.
    :raises RecursionError: nested too deeply.
    """
    return _std_decoder.decode(data.decode("utf-8"))


if orjson is not None:
    _OPTIONS = (orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS)
    _dumps = orjson.dumps
    _loads = orjson.loads
    _DecodeError = orjson.JSONDecodeError

    def dumps(obj: Any) -> bytes:
        """``obj`` as compact UTF-8 JSON (see the module's docstring).

        :raises TypeError, ValueError, RecursionError: as :func:`std_dumps`.
        """
        try:
            out: bytes = _dumps(obj, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return std_dumps(obj)
        if out.find(b"null") != -1:  # None, or a NaN or infinity the standard library refuses
            return std_dumps(obj)
        return out

    def loads(data: bytes) -> Any:
        """Parse JSON bytes (see the module's docstring).

        :raises ValueError, RecursionError: as :func:`std_loads`.
        """
        if data.translate(_DIGITS_TO_ZERO).find(_LONG_DIGITS) == -1:
            try:
                return _loads(data)
            except _DecodeError:
                pass
        return std_loads(data)

else:  # pragma: no cover
    dumps = std_dumps
    loads = std_loads
