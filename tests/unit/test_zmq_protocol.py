"""The zmq driver's messages and host strings (no network)."""

from __future__ import annotations

import pytest

from rpccore_zmq import protocol
from rpccore_zmq.protocol import Malformed, parse_request


def request(kind: bytes = protocol.CALL, seq: int = 7, topic: bytes = b"compute",
            host: bytes = b"", body: bytes = b"{}") -> list[bytes]:
    return [b"id", protocol.request(kind, seq, topic, host, body)]


def test_request_round_trip_keeps_topic_and_host_apart() -> None:
    for topic, host in [("a.b", "c"), ("a", "b.c"), ("t:x", "h:1"), ("ä€", "例"), ("x", "")]:
        req = parse_request(request(topic=topic.encode(), host=host.encode(), seq=2**63),
                            1024)
        assert (req.topic, req.host, req.seq, req.kind, req.body) == (
            topic, host, 2**63, protocol.CALL, b"{}")


def test_ping_and_headers() -> None:
    req = parse_request([b"id", protocol.header(protocol.PING, 5)], 1024)
    assert (req.kind, req.seq) == (protocol.PING, 5)
    assert protocol.parse_header(protocol.header(protocol.RECEIPT, 9)) == (protocol.RECEIPT, 9)
    with pytest.raises(Malformed):
        protocol.parse_header(b"RPCZ2k")
    with pytest.raises(Malformed):
        protocol.parse_header(b"XXXXXk" + bytes(8))


def test_what_servers_send_parses_back() -> None:
    assert protocol.parse_reply([protocol.reply(2**64 - 1, b'{"x":1}')]) == (
        protocol.REPLY, 2**64 - 1, b'{"x":1}')
    assert protocol.parse_reply([protocol.header(protocol.RECEIPT, 3)]) == (
        protocol.RECEIPT, 3, b"")
    assert protocol.is_receipt(protocol.header(protocol.RECEIPT, 3))
    assert not protocol.is_receipt(protocol.reply(3, b"{}"))


@pytest.mark.parametrize("frame, why", [
    (b"RPCZ2r", "shorter"),
    (b"RPCZ1r" + bytes(8) + b"{}", "not an rpccore"),  # the previous version
    (protocol.header(protocol.REPLY, 1), "without an envelope"),
    (protocol.header(protocol.RECEIPT, 1) + b"x", "after a header"),
])
def test_malformed_server_messages_are_refused(frame: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        protocol.parse_reply([frame])


@pytest.mark.parametrize("frames, why", [
    ([b"id"], "frames"),
    ([b"id", b""], "not an rpccore"),
    ([b"id", b"garbage-garbage-garbage"], "not an rpccore"),
    ([b"id", protocol.header(b"z", 1) + b"{}"], "kind"),
    (request()[:1], "frames"),
    (request() + [b"extra"], "frames"),
    (request(body=b""), "empty"),
    (request(body=b"x" * 1025), "over the limit"),
    (request(topic=b""), "topic length"),
    ([b"id", protocol.request(protocol.CAST, 1, b"abc", b"h", b"")[:-2]], "topic length"),
    ([b"id", protocol.header(protocol.CAST, 1) + b"\x00\x00"], "request header"),
    (request(topic=b"\xff\xfe"), "UTF-8"),
    (request(host=b"\xc3"), "UTF-8"),
    ([b"id", protocol.header(protocol.PING, 1) + b"x"], "ping"),
])
def test_malformed_requests_are_refused_with_a_reason(frames: list[bytes], why: str) -> None:
    with pytest.raises(Malformed, match=why):
        parse_request(frames, 1024)


@pytest.mark.parametrize("host, expected", [
    ("10.0.0.5", "tcp://10.0.0.5:9501"),
    ("10.0.0.5:9600", "tcp://10.0.0.5:9600"),
    ("compute-1.example.org", "tcp://compute-1.example.org:9501"),
    ("::1", "tcp://[::1]:9501"),
    ("[::1]", "tcp://[::1]:9501"),
    ("[fe80::2]:7000", "tcp://[fe80::2]:7000"),
])
def test_host_strings_to_endpoints(host: str, expected: str) -> None:
    assert protocol.endpoint(host, 9501) == expected


@pytest.mark.parametrize("host", ["", ":9501", "h:0", "h:70000", "h:port", "[::1", "[::1]x"])
def test_bad_host_strings(host: str) -> None:
    with pytest.raises(ValueError):
        protocol.endpoint(host, 9501)


def test_bind_endpoints() -> None:
    assert protocol.bind_endpoint("*", 1) == "tcp://*:1"
    assert protocol.bind_endpoint("::", 2) == "tcp://[::]:2"
    assert protocol.bind_endpoint("127.0.0.2", 3) == "tcp://127.0.0.2:3"
