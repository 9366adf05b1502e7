"""A private redis-server for fault tests: started, killed and restarted by
the test, on a free port, never the machine's shared Redis.

    with PrivateRedis() as server:
        url = server.url          # redis://127.0.0.1:PORT/0
        server.kill()             # SIGKILL, data gone (no persistence)
        server.restart()          # same port, empty
        server.pause(); server.resume()   # SIGSTOP / SIGCONT: a hung Redis

Every process is started and ended by its pid; ``stop()`` (also on leaving
the ``with`` block) removes the temporary directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """One ``redis-server`` process owned by the test.

    :raises RuntimeError: (start) redis-server is not installed or does not
        answer within 10 seconds; the message includes its log.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="rpccore-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        if self.process is not None:
            raise RuntimeError("already running")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        try:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        with open(os.path.join(self.dir, "redis.log"), "rb") as log_file:
            text = log_file.read()[-2000:].decode(errors="replace")
        self.kill()
        raise RuntimeError(f"private redis-server on port {self.port} did not start:\n{text}")

    def kill(self) -> None:
        """SIGKILL the server (by pid) and reap it. No-op when not running."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.kill(process.pid, signal.SIGCONT)  # in case it was paused
            process.kill()
        except ProcessLookupError:
            pass
        process.wait(10)

    def restart(self) -> PrivateRedis:
        """Kill (if running) and start again on the same port, empty."""
        self.kill()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: the port accepts connections but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
