"""Span names and attributes, after OpenTelemetry's RPC and messaging
semantic conventions.

========  ===========  ======================  ==================================
request   span kind    span name               example
========  ===========  ======================  ==================================
call      CLIENT       ``{topic}/{method}``    ``compute/reboot``
stream    CLIENT       ``{topic}/{method}``
gather    CLIENT       ``{topic}/{method}``
(server)  SERVER       ``{topic}/{method}``
cast      PRODUCER     ``send {topic}``        ``send compute``
(server)  CONSUMER     ``process {topic}``     ``process compute``
notify    PRODUCER     ``send {topic}``        ``send notifications``
(listen)  CONSUMER     ``process {topic}``     ``process notifications``
========  ===========  ======================  ==================================

A notification's ``rpc.method`` is its event type; its PRODUCER span's
topic is the first of its notification topics, and a listener's CONSUMER
span (``process {topic}``, child of the producer and linked to it: every
pool gets a copy) has the topic it came on. Batch listeners make no spans.

Every span has ``rpc.system`` (``"rpccore"``), ``rpc.service`` (the topic),
``rpc.method``, ``messaging.destination.name`` (the topic),
``messaging.message.id``, ``rpccore.cell``, ``rpccore.driver`` and
``rpccore.kind`` (call, cast, stream, gather, notify); ``rpccore.host`` is the
destination's host on the caller's side (and ``server.address``), the
server's own host on the server's. Cast spans add ``messaging.system``
(``"rpccore"``) and ``messaging.operation.type`` (``send``, ``process``).
A failure adds ``error.type`` (the remote exception's type, or the caller's
exception class) and sets the span's status to ERROR.
"""

from __future__ import annotations

from typing import Any

from rpccore.interceptors import ONE_WAY, IncomingRequest, OutgoingRequest, Request

SYSTEM = "rpccore"


def span_name(request: Request, server: bool) -> str:
    """The span's name (see the module docstring)."""
    topic = request.destination.topic
    if request.kind in ONE_WAY:
        return f"process {topic}" if server else f"send {topic}"
    return f"{topic}/{request.method}"


def _common(request: Request) -> dict[str, Any]:
    topic = request.destination.topic
    attributes: dict[str, Any] = {
        "rpc.system": SYSTEM, "rpc.service": topic, "rpc.method": request.method,
        "messaging.destination.name": topic, "messaging.message.id": request.message_id,
        "rpccore.cell": request.cell, "rpccore.driver": request.driver,
        "rpccore.kind": request.kind,
    }
    if request.kind in ONE_WAY:
        attributes["messaging.system"] = SYSTEM
    if request.destination.fanout:
        attributes["rpccore.fanout"] = True
    return attributes


def client_attributes(request: OutgoingRequest) -> dict[str, Any]:
    """Attributes of a CLIENT or PRODUCER span."""
    attributes = _common(request)
    host = request.destination.host
    if host is not None:
        attributes["rpccore.host"] = host
        attributes["server.address"] = host
    if request.kind in ONE_WAY:
        attributes["messaging.operation.type"] = "send"
    return attributes


def server_attributes(request: IncomingRequest) -> dict[str, Any]:
    """Attributes of a SERVER or CONSUMER span."""
    attributes = _common(request)
    if request.host is not None:
        attributes["rpccore.host"] = request.host
    if request.kind in ONE_WAY:
        attributes["messaging.operation.type"] = "process"
    return attributes


def metric_attributes(request: Request, outcome: str) -> dict[str, Any]:
    """Attributes of a duration measurement: by topic, method, outcome (and
    cell and kind, both of few values)."""
    return {"rpc.system": SYSTEM, "rpc.service": request.destination.topic,
            "rpc.method": request.method, "rpccore.outcome": outcome,
            "rpccore.cell": request.cell, "rpccore.kind": request.kind}
