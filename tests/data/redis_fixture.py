"""A real ``redis-server`` for the Redis online-store tests and benchmarks.

The server binary is taken from PATH; if it is missing it is installed with
``apt-get install -y redis-server`` (CI and the developer machines are Debian and run as root),
so ``.ci/run`` needs no extra step. Each server runs on a free loopback port with persistence
off (no RDB snapshots, no AOF) in a temporary folder, and is stopped by SIGTERM to its own PID.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_LOCK = Path("/tmp/shoprec-redis-install.lock")
"""Serializes installs when several test runs start at once (dpkg allows one at a time)."""


def _apt(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=120", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def redis_server_binary() -> str:
    """Path of ``redis-server``, installing the Debian package first if it is not on PATH.

    Raises:
        RuntimeError: if it is missing and cannot be installed (no apt-get, or apt failed),
            with apt's last output lines.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RuntimeError("redis-server is not on PATH and there is no apt-get to install it; "
                           "install the redis-server package")
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which("redis-server")
        if found:  # another run installed it while we waited
            return found
        install = ["install", "-y", "--no-install-recommends", "redis-server"]
        done = _apt(install)
        if done.returncode != 0:  # a stale or empty package list: refresh it once
            _apt(["update"])
            done = _apt(install)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise RuntimeError(f"apt-get install redis-server failed:\n{tail}")
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("apt-get installed redis-server but no redis-server binary is there")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own PID, then wait (SIGKILL only if it hangs)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def running_redis(workdir: Path, attempts: int = 3) -> Iterator[str]:
    """Start a throw-away ``redis-server`` and yield its address ``127.0.0.1:PORT``.

    Args:
        workdir: Its working folder (log file; nothing is persisted there).
        attempts: Ports to try, should another process take the free port first.

    Raises:
        RuntimeError: if the server does not answer PING within 20 s, with its log.
    """
    binary = redis_server_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    for _ in range(attempts):
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log),
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline and not _answers(port):
            time.sleep(0.05)
        if proc.poll() is None and _answers(port):
            try:
                yield f"127.0.0.1:{port}"
            finally:
                _stop(proc)
            return
        _stop(proc)
    text = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"redis-server did not start after {attempts} attempts:\n{text}")


def redis_db(address: str, db: int) -> str:
    """Connection string of database ``db`` on the server at ``address``, emptied first.

    Tests share one server per session and keep apart by database number.
    """
    import redis

    host, port = address.rsplit(":", 1)
    redis.Redis(host=host, port=int(port), db=db).flushdb()
    return f"{address},db={db}"


def redis_dump(connection: str, skip_prefix: bytes = b"shoprec:") -> dict[bytes, dict]:
    """Every hash in the database of ``connection`` (Feast's online rows), by key.

    Keys starting with ``skip_prefix`` (ShopRec's own bookkeeping) are left out, so two
    databases loaded with the same rows compare equal whatever their state tokens.
    """
    import redis

    from shoprec.settings import parse_redis

    host, port, extra = parse_redis(connection)
    client = redis.Redis(host=host, port=port, db=int(extra.get("db", 0)))
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)
            if not key.startswith(skip_prefix)}
