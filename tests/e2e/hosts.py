"""The cluster test's hosts, each in a network namespace: PostgreSQL on `db`, Redis on `redis`,
moto's S3 on `storage`, `git daemon` on `git`, the scripted model on `model`, two API replicas
and two workers, started the way docs/deployment.md tells an operator to, some with wall clocks
of their own."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from orchestrator.config import OrchestratorSettings
from tests.agent.policies import finish, rule
from tests.agent.workers import runner_env
from tests.cli.conftest import base_env
from tests.e2e.netns import Cluster
from tests.object_storage import S3Server
from tests.sync.conftest import git_checkout
from tests.waiting import wait_until
from tests.workers import settings_env

VENV_BIN = str(Path(sys.executable).parent)
WORKERS = ("worker-a", "worker-b")
FIRST_REPLY_MS = 5000
"""The model's pause before its first answer: an attempt keeps its worker busy that long, so
the two attempts of a task go one to each worker, and a worker host is killed mid-attempt."""
CLOCKS = {"worker-a": 90, "worker-b": -90, "api-2": 45}
"""Seconds each host's wall clock is off from the true one (the database host's): each worker
further off than a lease (60 s by default, 8 s here), one fast and one slow."""


def libfaketime() -> str:
    """The path of libfaketime, which gives a process (and its children) a wall clock of its own."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is not installed: run `make install`"
    return found[0]


def clock_env(host: str) -> dict[str, str]:
    """The environment that puts `host`'s processes on its own wall clock (none: the true one).
    Monotonic clocks stay true, as on a real host whose wall clock is off."""
    if host not in CLOCKS:
        return {}
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME": f"{CLOCKS[host]:+d}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def model_script() -> dict[str, Any]:
    """Writes cluster.txt (after a pause), then finishes."""
    first = rule({"turn": 0}, ("write_file", {"path": "cluster.txt", "content": "from a worker\n"}))
    first["reply"]["delay_ms"] = FIRST_REPLY_MS
    return {"rules": [rule({"tool_name": "write_file"}, finish("wrote cluster.txt")), first]}


class Platform:
    """Every host started, and how to reach each from the laptop."""

    def __init__(self, net: Cluster, tmp: Path) -> None:
        self.net, self.tmp = net, tmp
        self.addresses = {
            h: net.add(h)
            for h in ("db", "redis", "storage", "git", "model", "api-1", "api-2", *WORKERS)
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.pg_dir = Path(tempfile.mkdtemp(prefix="autan-cluster-pg-"))
        self.token = self.git_url = self.database_url = ""
        self.env: dict[str, dict[str, str]] = {}  # each API and worker host's

    def url(self, host: str, port: int) -> str:
        return f"http://{self.addresses[host]}:{port}"

    def start(
        self, host: str, name: str, argv: list[str], env: dict[str, str], user: str = ""
    ) -> None:
        self.processes.append(self.net.start(host, name, argv, env, user))

    def start_worker(self, host: str) -> None:
        """`autan worker` on `host`, its output appended to LOGS/HOST.log."""
        argv = [sys.executable, "-P", "-m", "cli", "worker"]
        self.start(host, host, argv, self.env[host])

    def run(self, host: str, argv: list[str], env: dict[str, str]) -> str:
        """Run a command on `host` to its end; its output (it must succeed)."""
        wrapped = [*self.net.enter(host), *argv]
        done = subprocess.run(wrapped, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{argv} on {host}: {done.stdout}{done.stderr}"
        return done.stdout

    def clock_of(self, host: str) -> tuple[float, float, float]:
        """The time on `host` (an API or worker host) as a process with its environment reads it
        (time.time() and datetime.now()), between two readings of the database's clock:
        (database before, host, database after)."""
        read = "import time, datetime; print(time.time(), datetime.datetime.now().timestamp())"
        with psycopg.connect(self.database_url, autocommit=True) as db:

            def now() -> float:
                row = db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
                assert row is not None
                return float(row[0])

            before = now()
            said = self.run(host, [sys.executable, "-c", read], self.env[host])
            after = now()
        by_time, by_datetime = (float(word) for word in said.split())
        assert abs(by_time - by_datetime) < 1, said
        return before, by_time, after

    def log(self, name: str) -> str:
        path = self.net.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ready(self, host: str) -> bool:
        """An API replica whose /readyz passes, or a worker that said it is ready."""
        if host.startswith("api"):
            return _answers(f"{self.url(host, 8000)}/readyz")
        return "ready" in self.log(host)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.net.logs.glob("*.log"))
        )

    def mounts(self) -> list[str]:
        """Mount points under the test's directory (a killed worker's sandboxes leave some)."""
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        return [line.split()[4] for line in lines if line.split()[4].startswith(f"{self.tmp}/")]

    def close(self) -> None:
        self.net.close()
        for process in self.processes:
            process.wait(timeout=30)
        for mount in reversed(self.mounts()):  # a failed test's, before its folder is removed
            subprocess.run(["umount", "--lazy", mount], check=False)
        shutil.rmtree(self.pg_dir, ignore_errors=True)


def start_database(p: Platform) -> str:
    """PostgreSQL on the db host, run by the `postgres` user; the URL of database `autan`."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert versions, "PostgreSQL's initdb is not in /usr/lib/postgresql: run `make install`"
    bin_dir = versions[-1].parent
    data, db = p.pg_dir / "data", p.addresses["db"]
    shutil.chown(p.pg_dir, "postgres")
    options = f"-D {data} -A trust -U postgres --no-sync --no-instructions".split()
    initdb = ["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), *options]
    subprocess.run(initdb, check=True, capture_output=True, timeout=120)
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {p.net.subnet}.0/24 trust\n")
    # The data directory lives outside the test's own (closed to the `postgres` user).
    settings = f"listen_addresses={db} unix_socket_directories={p.pg_dir} fsync=off"
    flags = [part for setting in settings.split() for part in ("-c", setting)]
    postgres = [str(bin_dir / "postgres"), "-D", str(data), *flags]
    p.start("db", "postgres", postgres, base_env(), user="postgres")

    def connects() -> psycopg.Connection[Any] | None:
        try:
            return psycopg.connect(f"postgresql://postgres@{db}:5432/postgres", autocommit=True)
        except psycopg.OperationalError:
            return None

    with wait_until(connects, timeout=60, interval=0.2, what="PostgreSQL on db") as admin:
        admin.execute("CREATE ROLE autan LOGIN")
        admin.execute("CREATE DATABASE autan OWNER autan")
    return f"postgresql://autan@{db}:5432/autan"


def start_redis(p: Platform) -> str:
    address = p.addresses["redis"]
    options = f"--bind {address} --port 6379 --protected-mode no --appendonly no --dir {p.tmp}"
    p.start("redis", "redis", ["redis-server", *options.split(), "--save", ""], base_env())
    client = redis.Redis(host=address, port=6379, socket_connect_timeout=2)

    def pings() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(pings, timeout=30, interval=0.1, what="Redis on its host")
    client.close()
    return f"redis://{address}:6379/0"


def serve_git(p: Platform) -> str:
    """A repository on the git host, served by `git daemon`; its URL."""
    work = git_checkout(p.tmp / "project", {"README.md": "cluster\n"}, {})
    served = p.tmp / "git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(served / "project.git")], check=True
    )
    daemon = f"--export-all --base-path={served} --listen={p.addresses['git']} --port=9418"
    p.start("git", "git-daemon", ["git", "daemon", *daemon.split(), str(served)], base_env())
    url = f"git://{p.addresses['git']}/project.git"
    wait_until(
        lambda: subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0,
        timeout=30,
        interval=0.2,
        what="git daemon",
    )
    return url


def serve_model(p: Platform) -> str:
    script = p.tmp / "model.json"
    script.write_text(json.dumps(model_script()))
    p.start(
        "model",
        "model",
        [
            sys.executable,
            "-m",
            "cli",
            "model",
            "scripted",
            "--host",
            p.addresses["model"],
            "--port",
            "8000",
            "--script",
            str(script),
        ],
        base_env(),
    )
    wait_until(
        lambda: _answers(f"{p.url('model', 8000)}/v1/models"), timeout=60, what="the model server"
    )
    return f"{p.url('model', 8000)}/v1"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def start_platform(p: Platform) -> None:
    s3 = S3Server(
        p.net.logs / "storage.log",
        host=p.addresses["storage"],
        port=9000,
        prefix=p.net.enter("storage"),
    )
    s3.start()
    p.database_url = start_database(p)
    assert s3.process is not None
    p.processes.append(s3.process)  # killed with its host, waited for by Platform.close
    settings = OrchestratorSettings(
        data_dir=p.tmp / "api-1",
        database_url=p.database_url,
        redis_url=start_redis(p),
        heartbeat_interval_s=0.5,
        heartbeat_timeout_s=8.0,
        reconcile_interval_s=0.5,
        requeue_grace_s=1.0,
        attempt_time_limit_s=120,
        **s3.settings(s3.bucket()),
    )
    p.git_url, model_url = serve_git(p), serve_model(p)
    # What an operator does once, from an API host: the schema, then the first admin token.
    said = p.run("api-1", [sys.executable, "-m", "cli", "migrate"], settings_env(settings))
    assert "is up to date" in said
    token = p.run(
        "api-1",
        [sys.executable, "-m", "cli", "token", "create", "admin", "--admin", "--on-server"],
        settings_env(settings),
    )
    p.token = token.strip()
    for api in ("api-1", "api-2"):
        env = settings_env(settings.model_copy(update={"data_dir": p.tmp / api})) | clock_env(api)
        p.env[api] = env
        uvicorn = (
            f"-P -m uvicorn --factory web.app:create_app --host {p.addresses[api]} --port 8000"
        )
        p.start(api, api, [sys.executable, *uvicorn.split()], env)
    for worker in WORKERS:
        home = p.tmp / worker
        env = settings_env(settings.model_copy(update={"data_dir": home / "data"}))
        env |= runner_env(home, VENV_BIN) | {
            "AUTAN_RUNNER": "agent",
            "AUTAN_MODEL_URL": model_url,
            "AUTAN_WORKER_CONCURRENCY": "1",
            "AUTAN_SANDBOX_BACKEND": "bwrap",
        }
        env |= clock_env(worker)
        p.env[worker] = env
        p.start_worker(worker)
    for host in ("api-1", "api-2", *WORKERS):
        wait_until(partial(p.ready, host), timeout=90, what=f"{host} to be ready")
