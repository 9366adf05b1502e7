"""NATS for the tests: the machine's server, and private clusters to break.

- :data:`NATS_URL`: the machine's NATS with JetStream (127.0.0.1:4222;
  ``RPCCORE_TEST_NATS_URL`` overrides). Tests that need it fail loudly when
  it is not there.
- :func:`delete_streams`: remove the JetStream streams a test made.
- :class:`PrivateNatsCluster`: ``nodes`` nats-server processes on free
  ports (client, cluster and monitoring ports of their own), routed to each
  other, JetStream on, data in a temporary folder; killed and restarted by
  the test, never the machine's server::

      with PrivateNatsCluster(3) as cluster:     # start() + wait_ready()
          url = cluster.url()                    # nats://127.0.0.1:P1,127.0.0.1:P2,...
          node = cluster.node_of("cell default")  # whose client names contain that
          cluster.kill(node)                      # SIGKILL, as a crash would
          cluster.restart(node); cluster.wait_ready()

- :class:`PrivateNatsServer`: one node with configuration of the test's
  own (authorization, TLS with a throw-away CA made by ``openssl``).

Every process is started and ended by its pid; :meth:`stop` (also on
leaving the ``with`` block) removes the folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

NATS_SERVER = "/usr/sbin/nats-server"
NATS_URL = os.environ.get("RPCCORE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def delete_streams(names: list[str], url: str = NATS_URL) -> None:
    """Delete JetStream streams (missing ones are fine)."""
    import nats
    import nats.js.errors

    async def run() -> None:
        client = await nats.connect(url)
        try:
            jsm = client.jsm()
            for name in names:
                try:
                    await jsm.delete_stream(name)
                except nats.js.errors.NotFoundError:
                    pass
        finally:
            await client.close()

    asyncio.run(run())


def delete_streams_of(control_exchange: str, url: str = NATS_URL) -> None:
    """Delete every JetStream stream the nats driver made for ``control_exchange``
    (found by their subjects)."""
    import nats
    import nats.js.errors

    from rpccore_nats.naming import Subjects

    base = Subjects(control_exchange).base + "."

    async def run() -> None:
        client = await nats.connect(url)
        try:
            jsm = client.jsm()
            for info in await jsm.streams_info():
                if any(s.startswith(base) for s in info.config.subjects or ()):
                    try:
                        await jsm.delete_stream(info.config.name)
                    except nats.js.errors.NotFoundError:
                        pass
        finally:
            await client.close()

    asyncio.run(run())


def connect_refused(url: str, **options: Any) -> str:
    """Connect a fresh single-cell ``RPC`` on ``url`` (with cell
    ``options``) that the server must refuse: the ``TransportError``'s text,
    which must come within 3 s."""
    import pytest

    from rpccore.errors import TransportError
    from rpccore.testing import single_cell_rpc

    rpc = single_cell_rpc(url, control_exchange=f"refused-{os.urandom(3).hex()}",
                          nats_connect_timeout=1, **options)
    try:
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            rpc.cell().driver().connect(1.5)
        assert time.monotonic() - start < 3
        return str(info.value)
    finally:
        rpc.close()


def assert_served_without_jetstream(rpc: Any, topic: str) -> None:
    """``rpc`` (a single-cell RPC whose server has no JetStream for it: none
    at all, or not for its account) serves ``topic``: a call of ``add``
    works, a confirmed cast is undeliverable, listening is refused."""
    import pytest

    from rpccore.errors import TransportError, Undeliverable

    assert rpc.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}}, timeout=10) == 2
    with pytest.raises(Undeliverable):
        rpc.cast({}, topic, {"method": "add", "args": {"a": 1, "b": 1}}, confirm=True)
    with pytest.raises(TransportError, match="JetStream"):
        rpc.cell().driver().listen("events", None, lambda incoming: None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateNatsCluster:
    """See the module docstring. Nodes are numbered from 0."""

    host = "127.0.0.1"

    def __init__(self, nodes: int = 3) -> None:
        if not os.path.exists(NATS_SERVER):
            raise FileNotFoundError(f"{NATS_SERVER} not found: install nats-server")
        self.base = Path(tempfile.mkdtemp(prefix="rpccore-nats-"))
        self.ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.monitor_ports = [free_port() for _ in range(nodes)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        for index in range(nodes):
            self._write_config(index)

    def _write_config(self, index: int) -> None:
        routes = ", ".join(f"nats-route://{self.host}:{port}" for i, port in
                           enumerate(self.cluster_ports) if i != index)
        store = self.base / f"n{index}"
        store.mkdir(exist_ok=True)
        (self.base / f"n{index}.conf").write_text(
            f'server_name: "n{index}"\n'
            f"listen: {self.host}:{self.ports[index]}\n"
            f"http: {self.host}:{self.monitor_ports[index]}\n"
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, '
            f"max_file_store: 512MB }}\n"
            f'cluster {{ name: "rpccore-test", listen: {self.host}:{self.cluster_ports[index]}, '
            f"routes: [{routes}] }}\n")

    # -- lifecycle ---------------------------------------------------------

    def start(self, index: int | None = None) -> PrivateNatsCluster:
        """Start every node (or one); returns at once (see :meth:`wait_ready`)."""
        for i in range(len(self.ports)) if index is None else [index]:
            process = self._processes[i]
            if process is not None and process.poll() is None:
                continue
            log = open(self.base / f"n{i}.log", "ab")
            # in the node's own folder: nats-server 2.9.10 once wrote a
            # consumer's meta.inf and meta.sum into its working directory
            # (the checkout) after a restart in the kill test
            self._processes[i] = subprocess.Popen(
                [NATS_SERVER, "-c", str(self.base / f"n{i}.conf")], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.base / f"n{i}")
            log.close()
        return self

    def _get(self, index: int, path: str) -> dict[str, object]:
        url = f"http://{self.host}:{self.monitor_ports[index]}{path}"
        with urllib.request.urlopen(url, timeout=1) as answer:
            result: dict[str, object] = json.loads(answer.read())
            return result

    def running(self) -> list[int]:
        return [i for i, p in enumerate(self._processes) if p is not None and p.poll() is None]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every running node is healthy (JetStream included) and routed
        to every other running node.

        :raises TimeoutError: not in time (with the end of the logs).
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            live = self.running()
            try:
                if all(self._get(i, "/healthz").get("status") == "ok"
                       and self._get(i, "/routez").get("num_routes", 0) >= len(live) - 1
                       for i in live):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"private NATS cluster not ready: {self.log_tail()}")

    def wait_up(self, timeout: float = 30.0) -> None:
        """Until every running node accepts clients and is routed to the
        others (JetStream may still be catching up)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            live = self.running()
            try:
                if all(self._get(i, "/routez").get("num_routes", 0) >= len(live) - 1
                       for i in live):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"private NATS cluster not up: {self.log_tail()}")

    def node_of(self, name_part: str) -> int:
        """The node a client whose connection name contains ``name_part`` is on."""
        for i in self.running():
            connz = self._get(i, "/connz?limit=1000")
            for conn in connz.get("connections", []):  # type: ignore[union-attr]
                if name_part in str(conn.get("name", "")):
                    return i
        raise LookupError(f"no client named like {name_part!r} is connected")

    def stream_leaders(self) -> dict[str, str]:
        """Stream name -> the server name (``n0``...) of its leader."""
        leaders: dict[str, str] = {}
        for i in self.running():
            jsz = self._get(i, "/jsz?accounts=true&streams=true")
            for account in jsz.get("account_details", []) or []:  # type: ignore[union-attr]
                for stream in account.get("stream_detail", []) or []:
                    leader = (stream.get("cluster") or {}).get("leader")
                    if leader:
                        leaders[stream["name"]] = leader
        return leaders

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a crash would."""
        process = self._processes[index]
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def restart(self, index: int) -> None:
        self.kill(index)
        self.start(index)

    def stop(self) -> None:
        """End every node and remove the folder. Idempotent."""
        for process in self._processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self._processes:
            if process is not None:
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self._processes = [None] * len(self._processes)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- helpers -----------------------------------------------------------

    def url(self, order: list[int] | None = None, auth: str = "") -> str:
        """``nats://`` URL listing the nodes (in ``order``)."""
        order = list(range(len(self.ports))) if order is None else order
        return "nats://" + ",".join(f"{auth}{self.host}:{self.ports[i]}" for i in order)

    def log_tail(self, chars: int = 1500) -> str:
        texts = []
        for path in sorted(self.base.glob("n*.log")):
            try:
                texts.append(f"{path.name}: " + path.read_text(errors="replace")[-chars:])
            except OSError:
                pass
        return "\n".join(texts)

    def __enter__(self) -> PrivateNatsCluster:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class PrivateNatsServer(PrivateNatsCluster):
    """One node (no cluster) whose configuration ends with ``extra``; with
    ``tls``, ``{tls}`` in ``extra`` becomes a TLS block for a certificate of
    ``localhost``/``127.0.0.1`` signed by :attr:`ca_file`."""

    def __init__(self, extra: str = "", tls: bool = False, jetstream: bool = True) -> None:
        self.extra = extra
        self.jetstream = jetstream
        self.ca_file: str | None = None
        self._tls = tls
        super().__init__(1)

    def _write_config(self, index: int) -> None:
        store = self.base / "n0"
        store.mkdir(exist_ok=True)
        extra = self.extra
        if self._tls:
            certs = self._make_certificates()
            extra = extra.replace("{tls}", f'tls {{ cert_file: "{certs / "server.pem"}", '
                                           f'key_file: "{certs / "server.key"}" }}')
        jetstream = (f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, '
                     f"max_file_store: 256MB }}\n" if self.jetstream else "")
        (self.base / "n0.conf").write_text(
            f'server_name: "single"\nlisten: {self.host}:{self.ports[0]}\n'
            f"http: {self.host}:{self.monitor_ports[0]}\n{jetstream}{extra}\n")

    def _make_certificates(self) -> Path:
        tls = self.base / "tls"
        tls.mkdir(exist_ok=True)
        (tls / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=rpccore test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"],
        ]
        for step in steps:
            subprocess.run(["openssl", *step], cwd=tls, check=True, capture_output=True)
        self.ca_file = str(tls / "ca.pem")
        return tls

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self._get(0, "/healthz").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"private NATS server not ready: {self.log_tail()}")
