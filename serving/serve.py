"""Run ``bentoml serve`` as a child process, wait until it is ready, and stop it cleanly.

Used by the serving tests, ``make serve`` and ``make run``. The server runs in its own session
(process group) so a Ctrl-C aimed at a parent — pytest, make, an Airflow task — does not
half-kill it; this module stops it by PID with SIGTERM (BentoML's supervisor then stops its
workers), and only if that times out kills the server and its workers by PID.

Without an explicit target it serves the champion's bento (``registry/champion.json``, see
:mod:`serving.registry`), or the last built bento when nothing has been promoted yet.

Usage: ``python -m serving.serve [--port 3000] [--target BENTO_TAG] [--demo]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from serving.package import REPO_ROOT, child_env
from serving.registry import champion
from shoprec.settings import Settings

DEFAULT_TARGET = "shoprec:latest"
"""The last built bento in ``settings.bentoml_home``; ``serving.service:ShopRec`` serves source."""


def default_target(settings: Settings) -> str:
    """The champion's bento tag if one was promoted, else :data:`DEFAULT_TARGET`.

    Serving the champion rather than the newest bento is what keeps a rejected or half-promoted
    challenger off the air.
    """
    record = champion(settings)
    return str(record["bento_tag"]) if record else DEFAULT_TARGET
DEMO_REQUEST = {"user_id": 7, "k": 10}


@dataclass
class Server:
    """A running ``bentoml serve`` child.

    Attributes:
        process: The ``bentoml serve`` process (leader of its own process group).
        url: Base URL, e.g. ``http://127.0.0.1:3000``.
        log_path: Where its stdout/stderr go, or ``None`` if inherited.
        pids: The server and its workers as last seen by :func:`stop`.
    """

    process: subprocess.Popen
    url: str
    log_path: Path | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """PID of the ``bentoml serve`` supervisor."""
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def _child_setup() -> None:
    """Give the child default SIGINT/SIGTERM handling even if the parent ignores them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start(settings: Settings, target: str | None = None, port: int = 3000,
          host: str = "127.0.0.1", log_path: Path | None = None) -> Server:
    """Start ``bentoml serve TARGET`` (default: :func:`default_target`); do not wait."""
    target = target or default_target(settings)
    cmd = [str(Path(sys.executable).parent / "bentoml"), "serve", target,
           "--host", host, "--port", str(port)]
    out: IO | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
    try:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(settings), stdout=out,
                                stderr=subprocess.STDOUT if out else None,
                                start_new_session=True, preexec_fn=_child_setup)
    finally:
        if out is not None:
            out.close()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return Server(process=proc, url=f"http://{shown}:{port}", log_path=log_path)


def wait_ready(server: Server, timeout: float = 180.0) -> float:
    """Poll ``/readyz`` until it answers 200; return seconds waited.

    Raises:
        RuntimeError: if the server exits first or is not ready in time (with its log tail).
    """
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"bentoml serve not ready after {timeout:.0f} s:\n{server.log_tail()}")


def descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of ``pid`` (from ``/proc``; empty where unavailable).

    BentoML's supervisor (circus) starts each worker in a session of its own, so a process
    group check would miss them; stopping must follow the actual process tree.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(server: Server, timeout: float = 30.0) -> int | None:
    """SIGTERM the server PID, wait for it and its workers; SIGKILL stragglers by PID.

    Returns:
        The server's exit code (negative signal number if it had to be killed).
    """
    proc = server.process
    tree = descendants(proc.pid)
    server.pids = sorted({*server.pids, proc.pid, *tree})
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in tree:  # workers that outlived the supervisor; all started by this server
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    return proc.returncode


@contextmanager
def serving(settings: Settings, target: str | None = None, port: int = 3000,
            host: str = "127.0.0.1", log_path: Path | None = None,
            ready_timeout: float = 180.0) -> Iterator[Server]:
    """Serve ``target`` for the duration of a ``with`` block; always stopped on exit."""
    server = start(settings, target, port, host, log_path)
    try:
        wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(server)


def demo(server: Server, request: dict = DEMO_REQUEST) -> dict:
    """POST an example request and print it with its real response (for ``make run``)."""
    import httpx

    resp = httpx.post(f"{server.url}/recommend", json=request, timeout=30.0)
    print(f"$ curl -s -X POST {server.url}/recommend -H 'content-type: application/json' "
          f"-d '{json.dumps(request)}'")
    print(f"HTTP {resp.status_code}")
    print(json.dumps(resp.json(), indent=2))
    resp.raise_for_status()
    return resp.json()


def _interrupt(signum: int, frame: object) -> None:
    """Treat SIGTERM like Ctrl-C so ``serving()`` stops the child on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until Ctrl-C (or SIGTERM), then stop the server cleanly."""
    parser = argparse.ArgumentParser(prog="python -m serving.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--target", default=None,
                        help="bento tag or 'serving.service:ShopRec' (default: the champion's "
                             f"bento, else {DEFAULT_TARGET})")
    parser.add_argument("--demo", action="store_true", help="send an example request first")
    ns = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        with serving(Settings.from_env(), ns.target, ns.port, ns.host) as server:
            print(f"ShopRec is ready at {server.url} (pid {server.pid}); Ctrl-C stops it.")
            if ns.demo:
                demo(server)
            code = server.process.wait()
    except KeyboardInterrupt:
        print("stopping ShopRec server")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
