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


def test_pool_codes_are_injective_and_none_is_a_pool_of_its_own() -> None:
    pools = [None, "-", "+", "billing", "+billing", "search.#*/ é", " ", "None"]
    codes = [protocol.pool_code(p) for p in pools]
    assert len(set(codes)) == len(pools)
    assert [protocol.pool_name(c) for c in codes] == pools
    with pytest.raises(protocol.InvalidDestination):
        protocol.pool_code("\ud800")  # cannot travel as UTF-8


def test_notifications_and_pool_questions_travel_like_requests() -> None:
    code = protocol.pool_code("billing").encode()
    req = parse_request(request(protocol.NOTIFY, topic=b"notifications", host=code), 1024)
    assert (req.kind, req.topic, req.host) == (protocol.NOTIFY, "notifications", "+billing")
    req = parse_request(request(protocol.POOLS, topic=b"n", body=protocol.POOLS_QUERY), 1024)
    assert (req.kind, req.topic, req.body) == (protocol.POOLS, "n", b"?")


def test_pools_answers_parse_back_and_junk_is_refused() -> None:
    codes = ["-", "+billing", "+é/#"]
    assert protocol.decode_pools(protocol.encode_pools(codes)) == codes
    assert protocol.decode_pools(protocol.encode_pools([])) == []
    for junk in (b"", b"{}", b'["billing"]', b"[1]", b"\xff"):
        with pytest.raises(Malformed):
            protocol.decode_pools(junk)


def test_notification_keys_are_no_rpc_topic() -> None:
    key = protocol.notification_key("notifications")
    assert key != "notifications" and key.startswith(protocol.NOTIFICATION_KEY_PREFIX)
    assert protocol.notification_key("a") != protocol.notification_key("b")
    protocol.check_topic("notifications")  # an ordinary RPC topic
    protocol.check_topic("rpccore.notify")
    with pytest.raises(protocol.InvalidDestination, match="reserved"):
        protocol.check_topic(key)
