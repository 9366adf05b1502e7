"""The driver toolkit: plumbing every transport needs, written once.

A driver (see :class:`rpccore.Driver`) moves envelope bytes; around that it
keeps running into the same few problems. This package solves each once,
with no dependency beyond the standard library, for rpccore's own drivers
and for third parties:

- :mod:`rpccore.driverkit.names`: :class:`NameEncoding` and
  :func:`bounded`, injective queue names and routing keys built from
  topics and hosts that may hold any character;
- :mod:`rpccore.driverkit.hosts`: :func:`parse_host_port`, host strings
  (``name:port``, ``[v6]:port``) from URLs, destinations and matchmakers;
- :mod:`rpccore.driverkit.completion`: :class:`Completion`, a result or an
  error that one thread sets and others wait for (confirms, receipts,
  replies, work run on an I/O thread);
- :mod:`rpccore.driverkit.mailbox`: :class:`Mailbox`, work handed from any
  thread to an I/O thread, with a wake-up that costs nothing while that
  thread is busy.

See "The driver toolkit" in docs/plugins.rst.
"""

from rpccore.driverkit.completion import Completion
from rpccore.driverkit.hosts import BadAddress, HostPort, parse_host_port
from rpccore.driverkit.mailbox import Empty, Mailbox
from rpccore.driverkit.names import NameEncoding, bounded

__all__ = ["BadAddress", "Completion", "Empty", "HostPort", "Mailbox", "NameEncoding",
           "bounded", "parse_host_port"]
