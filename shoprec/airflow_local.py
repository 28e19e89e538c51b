"""Run Airflow on the embedded defaults: ``airflow dags test`` and ``airflow standalone``.

Two traps measured on this stack shape this module:

* ``airflow dags list`` (and the UI) stay empty until ``airflow dags reserialize`` ran.
* ``airflow standalone`` started from a script ignores SIGINT, and SIGTERM kills only the
  parent while its scheduler, API server, DAG processor, triggerer and workers live on.
  We start it in its own session with SIGINT restored, stop it with SIGINT to its PID,
  and then sweep its process group so nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def airflow_env(home: Path, port: int = 8080, base: Mapping[str, str] | None = None,
                parallelism: int = 4) -> dict[str, str]:
    """Environment for Airflow child processes on the embedded (SQLite) defaults.

    Args:
        home: ``SHOPREC_HOME``; Airflow's own home is ``home/airflow``.
        port: API server / UI port.
        base: Environment to extend (default: this process's).
        parallelism: Executor slots; the default of 32 is far too many for 2 cores.
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "SHOPREC_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__API__PORT": str(port),
        # Task processes report to the API server's execution API; its default URL assumes
        # port 8080, so any other port would leave every task unable to start.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "FEAST_USAGE": "False",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    return env


def _airflow(env: Mapping[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "airflow"
    return subprocess.run([str(exe), *args], env=dict(env), check=check)


POOLS = {"shoprec_features": (1, "Serializes snapshot builds and materialization.")}
"""Pools the DAGs use; a task in a missing pool would never be scheduled."""


def prepare(env: Mapping[str, str]) -> None:
    """Create/upgrade the metadata DB, create the pools and serialize the DAGs."""
    _airflow(env, "db", "migrate")
    for name, (slots, description) in POOLS.items():
        _airflow(env, "pools", "set", name, str(slots), description)
    _airflow(env, "dags", "reserialize")


_DAG_TEST = """
import json, os, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.pool import Pool
from airflow.sdk import timezone
from airflow.utils import db
folder, dag_id, conf, tasks, when, pools = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
db.upgradedb()  # what `airflow db migrate` runs; dag.test() itself serializes the DAGs
for name, (slots, description) in pools.items():
    Pool.create_or_update_pool(name, slots, description, include_deferred=False)
bag = DagBag(dag_folder=folder)
if bag.import_errors:
    sys.exit(f"DAG import errors: {bag.import_errors}")
dag = bag.dags[dag_id]
if tasks:
    dag = dag.partial_subset(task_ids=tasks, include_upstream=True)
# logical_date=None: a manual run (no data interval), like the UI's Trigger button.
dr = dag.test(logical_date=timezone.parse(when) if when else None, run_conf=conf or None)
print(f"DAG_RUN {dr.run_id} {dr.state} pid={os.getpid()}")
sys.exit(0 if dr.state == "success" else 1)
"""


def run_dag(dag_id: str, env: Mapping[str, str], conf: dict | None = None,
            log: Path | None = None, *, tasks: Sequence[str] | None = None,
            logical_date: str | None = None) -> int:
    """Run one DAG run to the end with ``dag.test()`` in a child process; 0 when it succeeded.

    ``dag.test()`` runs every task in one process against the SQLite metadata DB, which is the
    embedded way to run the pipeline without a scheduler. The same child first migrates the
    DB and creates the pools (one interpreter start instead of one ``airflow`` CLI call each),
    and prints ``DAG_RUN <run_id> <state> pid=<pid>`` last, so a caller can tell which process
    ran the in-process tasks (isolated tasks run in children of it).

    Args:
        dag_id: The DAG to run.
        env: Environment from :func:`airflow_env`.
        conf: Run configuration (validated against the DAG's Params).
        log: Append the run's stdout/stderr here instead of inheriting the terminal.
        tasks: Run only these tasks and their upstream tasks (default: the whole DAG).
        logical_date: ISO timestamp of a scheduled-style run (it gets the timetable's data
            interval); default ``None``: a manual run without a data interval.
    """
    args = [sys.executable, "-c", _DAG_TEST, env["AIRFLOW__CORE__DAGS_FOLDER"], dag_id,
            json.dumps(conf or {}), json.dumps(list(tasks or [])), json.dumps(logical_date),
            json.dumps(POOLS)]
    if log is None:
        return subprocess.run(args, env=dict(env), check=False).returncode
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.run(args, env=dict(env), stdout=out, stderr=out, check=False).returncode


class Standalone:
    """``airflow standalone`` as a context manager that leaves no process behind.

    Attributes:
        url: Base URL of the API server / UI.
        proc: The standalone parent process (its PID is also its process-group id).
    """

    def __init__(self, env: Mapping[str, str], port: int, log: Path | None = None) -> None:
        self.env = dict(env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> Standalone:
        """Start standalone in its own session with default SIGINT handling; wait until healthy."""
        prepare(self.env)
        out = open(self.log, "ab") if self.log else None  # noqa: SIM115 - closed in stop()
        exe = Path(sys.executable).parent / "airflow"
        self.proc = subprocess.Popen(
            [str(exe), "standalone"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self._out = out
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited early ({self.proc.returncode});"
                                   f" see {self.log}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200 \
                        and self._password_file().exists():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(2)
        self.stop()
        raise TimeoutError(f"airflow standalone not healthy after {timeout:.0f}s; see {self.log}")

    def _password_file(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"

    def token(self) -> str:
        """Log in as the generated admin user, as the UI does, and return a bearer token."""
        users = json.loads(self._password_file().read_text())
        user, password = next(iter(users.items()))
        resp = httpx.post(f"{self.url}/auth/token",
                          json={"username": user, "password": password}, timeout=30)
        resp.raise_for_status()
        return resp.json()["access_token"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Unpause ``dag_id`` and trigger a run through the REST API the UI button uses."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        deadline = time.monotonic() + 120
        while True:  # the DAG appears once the DAG processor has parsed it
            r = httpx.patch(f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": False},
                            headers=headers, timeout=30)
            if r.status_code == 200 or time.monotonic() > deadline:
                r.raise_for_status()
                break
            time.sleep(3)
        r = httpx.post(f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
                       json={"logical_date": None, "conf": conf or {}}, headers=headers,
                       timeout=30)
        r.raise_for_status()
        return r.json()["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900.0) -> str:
        """Poll the run until it finishes; return its final state."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=headers,
                          timeout=30)
            r.raise_for_status()
            state = r.json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise TimeoutError(f"run {run_id} of {dag_id} not finished after {timeout:.0f}s")

    def stop(self, timeout: float = 60.0) -> list[int]:
        """SIGINT the standalone PID, wait, then sweep its process group.

        Returns:
            PIDs that were still alive after the graceful stop and had to be killed (empty when
            the shutdown was clean).
        """
        leftovers: list[int] = []
        if self.proc is not None:
            pgid = self.proc.pid
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGINT)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            deadline = time.monotonic() + 15
            while (leftovers := group_pids(pgid)) and time.monotonic() < deadline:
                time.sleep(0.5)
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if getattr(self, "_out", None):
            self._out.close()
        return leftovers

    def __enter__(self) -> Standalone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_pids(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose process group is ``pgid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def main(argv: list[str] | None = None) -> int:
    """``python -m shoprec.airflow_local {run-dag DAG | standalone}`` (used by the Makefile)."""
    parser = argparse.ArgumentParser(prog="shoprec.airflow_local")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run-dag")
    run.add_argument("dag_id")
    run.add_argument("--conf", type=json.loads, default=None)
    sa = sub.add_parser("standalone")
    sa.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    home = Path(os.environ.get("SHOPREC_HOME", "var")).resolve()
    # Started in the background by a script or make, this process may have inherited SIGINT
    # as ignored; restore it so Ctrl-C (or `kill -INT`) always reaches the clean stop below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.cmd == "run-dag":
        code = run_dag(args.dag_id, airflow_env(home), args.conf)
        print(f"{args.dag_id}: {'success' if code == 0 else 'FAILED'}")
        return code
    server = Standalone(airflow_env(home, args.port), args.port)
    server.start()
    print(f"Airflow UI: {server.url}  (login: see {server._password_file()}); Ctrl-C stops it")
    try:
        while server.proc and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        left = server.stop()
        print(f"airflow stopped; {len(left)} straggler process(es) had to be killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
