"""Options the zmq driver adds to its cell's group (``[cell:NAME]``)."""

from __future__ import annotations

from oslo_config import cfg

OPTIONS: list[cfg.Opt] = [
    cfg.PortOpt("zmq_port", default=9501,
                help="TCP port a serving process binds, and the port of every host "
                     "string that names none."),
    cfg.StrOpt("zmq_bind_address", default="*",
               help="Address a serving process binds zmq_port on: '*' (every "
                    "interface, the default, so that clients reach it by any of its "
                    "addresses) or one address such as 127.0.0.1 or 10.0.0.5. The "
                    "port is unauthenticated: restrict it, or set secret_key."),
    cfg.StrOpt("zmq_host",
               help="Host string a server that names no host registers with the "
                    "matchmaker. Default: zmq_bind_address when it is one address, "
                    "else this machine's host name."),
    cfg.StrOpt("matchmaker", default="static",
               help="Matchmaker (entry point in rpccore.matchmakers) that tells which "
                    "hosts consume a topic: static, ring, redis or a third party's."),
    cfg.FloatOpt("zmq_heartbeat_interval", default=5.0, min=0.05,
                 help="Seconds between re-registrations of this process's servers "
                      "with the matchmaker (keep it well under matchmaker_ttl), and "
                      "the TCP keepalive interval of every connection (whole "
                      "seconds, at least 1)."),
    cfg.FloatOpt("zmq_receipt_timeout", default=2.0, min=0.01,
                 help="Seconds a peer has to acknowledge a message it was sent. A "
                      "peer that misses it is marked dead: topic messages go to "
                      "another host, host-directed casts are reported lost."),
    cfg.FloatOpt("zmq_lookup_cache_ttl", default=1.0, min=0.0,
                 help="Seconds a non-empty matchmaker look-up is reused (0: look up "
                      "every message)."),
    cfg.IntOpt("zmq_max_peers", default=256, min=1,
               help="Most client connections for casts (one per peer host) kept "
                    "open, and most idle connections kept for calls; beyond it the "
                    "least recently used idle one is closed."),
    cfg.IntOpt("zmq_busy_wait_us", default=0, min=0, max=100000,
               deprecated_for_removal=True,
               deprecated_reason="Calls no longer poll for their reply: in interleaved "
                                 "runs polling was as often slower as faster, and it "
                                 "kept a core busy.",
               help="Ignored (calls used to poll this many microseconds for their "
                    "reply before sleeping)."),
    cfg.IntOpt("zmq_send_queue", default=10000, min=1,
               help="Messages queued per peer connection (ZMQ high-water mark); a "
                    "send beyond it fails over or raises TransportError."),
    cfg.StrOpt("zmq_curve_server_public_key",
               help="CURVE public key (Z85, 40 characters) of this cell's servers. Set: "
                    "every connection of the cell is encrypted, and clients accept only "
                    "servers holding the matching secret key."),
    cfg.StrOpt("zmq_curve_server_secret_key", secret=True,
               help="CURVE secret key of this cell's servers; needed by processes that "
                    "serve."),
    cfg.StrOpt("zmq_curve_client_secret_key", secret=True,
               help="This process's CURVE client secret key. Unset: a fresh key pair "
                    "per driver (enough when zmq_curve_allowed_clients is empty)."),
    cfg.ListOpt("zmq_curve_allowed_clients", default=[],
                help="CURVE public keys of the clients servers accept. Empty: any "
                     "client that knows the server public key."),
]
