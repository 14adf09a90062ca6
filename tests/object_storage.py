"""A local S3-compatible server for the tests: moto in server mode, a subprocess on a free port."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.live import free_port
from tests.waiting import wait_until

ACCESS_KEY = "autan-test"
SECRET_KEY = "autan-test-secret"
REGION = "us-east-1"


class S3Server:
    """moto's S3 on 127.0.0.1; each test makes its own bucket, so nothing leaks between tests.

    The cluster test puts it on a host of its own: `host` an address there, `port` a fixed
    one, `prefix` the command that runs it on that host (`ip netns exec NS`).
    """

    def __init__(
        self, log: Path, host: str = "127.0.0.1", port: int = 0, prefix: Sequence[str] = ()
    ) -> None:
        self.log, self.host, self.prefix = log, host, list(prefix)
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.port = self.port or free_port()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "moto.server",
                    "-H",
                    self.host,
                    "-p",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout=30, what="moto's S3 server to answer")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"moto's server exited: see {self.log}")
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=2).status_code < 500
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def client(self) -> object:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def bucket(self) -> str:
        """A new empty bucket; its name."""
        name = f"autan-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def settings(self, bucket: str, prefix: str = "store") -> dict[str, str]:
        """OrchestratorSettings fields that put its storage in `bucket`."""
        return {
            "storage_url": f"s3://{bucket}/{prefix}",
            "s3_endpoint_url": self.url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
        }
