"""A private RabbitMQ node for fault tests: start, kill, pause, restart.

Used by the rabbit driver's fault tests and meant for any other driver that
needs a broker it may break (the qpid driver: AMQP 1.0 through the
``rabbitmq_amqp1_0`` plugin, enabled here, on the same port).

Usage::

    from private_rabbit import PrivateRabbit

    with PrivateRabbit() as node:          # start() + wait_ready(); stop() at exit
        url = node.url("rabbit")           # "rabbit://guest:guest@127.0.0.1:PORT/"
        node.kill()                        # SIGKILL the broker (epmd keeps running)
        node.restart()                     # same port, same data: durable queues survive
        node.wait_ready(30)
        node.pause(); node.resume()        # SIGSTOP / SIGCONT: a broker that hangs

    # as a pytest fixture
    @pytest.fixture(scope="module")
    def rabbit():
        with PrivateRabbit() as node:
            yield node

    PrivateRabbit(tls=True) also listens for TLS on ``node.ssl_port`` with a
    throw-away CA (``node.ca_file``) that signed a certificate for localhost
    and 127.0.0.1 (made with the ``openssl`` command).

    Nodes of a cluster share an epmd port and a cookie
    (``PrivateRabbit(epmd_port=..., cookie=...)``): see tests/private_cluster.py.

The node runs ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly (as the
current user, normally root) with its own HOME, node name, ports (AMQP,
distribution, epmd: all free ones found at construction), data and log
folders, all under a temporary folder that :meth:`stop` removes. It never
touches the machine's shared broker. Every process it starts (the server
script, ``beam.smp``, its ``epmd``, helper processes) carries a marker in its
environment; :meth:`stop` and :meth:`kill` find them by that marker and end
them by pid. A node takes 12 to 16 s to become ready: start as few as you can.

Errors: :meth:`start` raises ``FileNotFoundError`` when RabbitMQ is not
installed; :meth:`wait_ready` raises ``TimeoutError`` (with the end of the
node's log) when the node does not accept AMQP connections in time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
_MARKER = "RPCCORE_PRIVATE_RABBIT"


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped by a signal (or gone)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for tid in threads:  # every thread of it: a stop reaches each separately
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


class PrivateRabbit:
    """One private RabbitMQ node; see the module docstring.

    :ivar port: the AMQP port (0-9-1 and, through the plugin, 1.0)
    :ivar host: always ``127.0.0.1``
    """

    host = "127.0.0.1"

    #: where RabbitMQ's scripts are (inside the root for a chroot'ed node)
    bin_dir = "/usr/lib/rabbitmq/bin"

    def __init__(self, plugins: tuple[str, ...] = ("rabbitmq_amqp1_0",),
                 tls: bool = False, *, epmd_port: int | None = None,
                 cookie: str | None = None, config: str = "") -> None:
        self.port = free_port()
        #: with ``tls``: the TLS port, and the CA file that signed the node's
        #: certificate (for ``localhost`` and ``127.0.0.1``)
        self.ssl_port: int | None = free_port() if tls else None
        self.ca_file: str | None = None
        self.dist_port = free_port()
        #: a cluster's nodes share one epmd (they find each other through it)
        self.epmd_port = epmd_port or free_port()
        self.token = uuid.uuid4().hex
        self.cookie = cookie or uuid.uuid4().hex
        self.nodename = f"rpccore{self.token[:8]}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="rpccore-rabbit-", dir=self._temp_root()))
        self.plugins = plugins
        self.extra_config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None
        self._write_config()

    # -- files -------------------------------------------------------------

    def _temp_root(self) -> str | None:
        """Where the node's folder goes (None: the system's temporary folder)."""
        return None

    def inner(self, path: Path) -> str:
        """``path`` as the node sees it (a chroot'ed node sees its root as /)."""
        return str(path)

    def command(self, program: str) -> list[str]:
        """How to run one of RabbitMQ's scripts (``rabbitmq-server``, ``rabbitmqctl``)."""
        return [f"{self.bin_dir}/{program}"]

    def _write_config(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir(exist_ok=True)
        cookie = self.base / "home" / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        config = (f"listeners.tcp.default = {self.port}\n"
                  "loopback_users = none\n"
                  "disk_free_limit.absolute = 10MB\n"
                  "log.console = false\n"
                  "log.file.level = info\n" + self.extra_config)
        if self.ssl_port is not None:
            tls = self._make_certificates()
            config += (f"listeners.ssl.default = {self.ssl_port}\n"
                       f"ssl_options.cacertfile = {tls / 'ca.pem'}\n"
                       f"ssl_options.certfile = {tls / 'server.pem'}\n"
                       f"ssl_options.keyfile = {tls / 'server.key'}\n"
                       "ssl_options.verify = verify_none\n"
                       "ssl_options.fail_if_no_peer_cert = false\n")
        (self.base / "rabbitmq.conf").write_text(config)
        (self.base / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")

    def _make_certificates(self) -> Path:
        """A throw-away CA and a server certificate for localhost/127.0.0.1
        (``openssl`` command line)."""
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

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        inner = self.inner
        env.update({
            "HOME": inner(self.base / "home"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": inner(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": inner(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": inner(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": inner(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": inner(self.base / "rabbit.pid"),
            _MARKER: self.token,
        })
        return env

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> PrivateRabbit:
        """Start the node (returns at once; see :meth:`wait_ready`)."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("the node is already running")
        self._check_installed()
        self._log = open(self.base / "server.out", "ab")
        self._process = subprocess.Popen(
            self.command("rabbitmq-server"), env=self._env(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def _check_installed(self) -> None:
        if not os.path.exists(RABBITMQ_SERVER):
            raise FileNotFoundError(f"{RABBITMQ_SERVER} not found: is rabbitmq-server installed?")

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` against this node; its output.

        :raises subprocess.CalledProcessError: it failed (output attached).
        """
        return subprocess.run([*self.command("rabbitmqctl"), "-n", self.nodename, *args],
                              env=self._env(), capture_output=True, text=True,
                              timeout=timeout, check=True).stdout

    def rabbitmqctl_command(self) -> list[str]:
        """A command list running rabbitmqctl against this node (for tools that
        take a command, such as queue_listing.BrokerAdmin)."""
        env = self._env()
        keys = ("HOME", "ERL_EPMD_PORT", "RABBITMQ_NODENAME", _MARKER)
        return ["env", *[f"{k}={env[k]}" for k in keys], *self.command("rabbitmqctl"),
                "-n", self.nodename]

    def wait_ready(self, timeout: float = 40.0) -> float:
        """Wait until the node completes an AMQP 0-9-1 handshake; returns the
        monotonic time it first did.

        :raises TimeoutError: not ready in ``timeout`` seconds (or it died).
        """
        import amqp

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                conn = amqp.Connection(f"{self.host}:{self.port}", userid="guest",
                                       password="guest", connect_timeout=1)
                conn.connect()
                conn.close()
                return time.monotonic()
            except Exception:
                time.sleep(0.1)
        raise TimeoutError(f"private RabbitMQ on port {self.port} not ready: {self.log_tail()}")

    def accepts_connections(self) -> bool:
        """Whether the AMQP port accepts TCP connections right now."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        """Pids of every live process this node started (found by marker)."""
        found = []
        needle = f"{_MARKER}={self.token}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if needle in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def _broker_pids(self) -> list[int]:
        """Every process but epmd (which a restarted node reuses)."""
        result = []
        for pid in self.pids():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = ""
            if not exe.endswith("/epmd"):
                result.append(pid)
        return result

    def _signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the broker (beam and its helpers), as a crash would."""
        self._signal(self._broker_pids(), signal.SIGKILL)
        if self._process is not None:
            self._process.wait(10)
        end = time.monotonic() + 10
        while self._broker_pids() and time.monotonic() < end:
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP the broker: it keeps its sockets open but answers nothing.
        Returns once every broker process is stopped (a signal takes effect
        asynchronously: the broker could otherwise answer one more request)."""
        pids = self._broker_pids()
        self._signal(pids, signal.SIGSTOP)
        end = time.monotonic() + 5
        while time.monotonic() < end and not all(_stopped(pid) for pid in pids):
            time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(self._broker_pids(), signal.SIGCONT)

    def restart(self) -> None:
        """Start again after :meth:`kill` or :meth:`stop`: same port, same data
        (durable queues and persistent messages survive). Returns at once."""
        if self._process is not None and self._process.poll() is None:
            self.kill()
        self.start()

    def stop(self) -> None:
        """End every process of the node (SIGTERM, then SIGKILL), remove its
        folder. Idempotent."""
        pids = self.pids()
        self._signal(pids, signal.SIGCONT)
        self._signal(pids, signal.SIGTERM)
        end = time.monotonic() + 5
        while self.pids() and time.monotonic() < end:
            time.sleep(0.05)
        self._signal(self.pids(), signal.SIGKILL)
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.base, ignore_errors=True)

    # -- helpers -----------------------------------------------------------

    def address(self, user: str = "guest", password: str = "guest") -> str:
        """``user:password@host:port``, one host of a transport URL."""
        return f"{user}:{password}@{self.host}:{self.port}"

    def url(self, scheme: str = "rabbit", user: str = "guest", password: str = "guest",
            vhost: str = "") -> str:
        """A transport URL of this node: ``url("rabbit")``, ``url("qpid")``...
        (the plain port; for TLS use :attr:`ssl_port` and :attr:`ca_file`)."""
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/{vhost}"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the node's output, for error messages."""
        texts = []
        for path in [self.base / "server.out", *sorted((self.base / "log").glob("*.log"))]:
            try:
                texts.append(path.read_text(errors="replace")[-chars:])
            except OSError:
                pass
        return "\n".join(texts)[-chars:]

    def __enter__(self) -> PrivateRabbit:
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

