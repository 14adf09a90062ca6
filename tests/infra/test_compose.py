"""infra/compose.yaml: its structure holds together (no compose tool runs here), and it runs
the image of infra/Dockerfile the way the Kubernetes manifests do."""

from __future__ import annotations

import re
from typing import Any

from tests.infra.deploy_files import COMPOSE, INFRA, ROOT, yaml_documents

AUTAN_IMAGE_COMMANDS = {"autan", "uvicorn"}


def compose() -> dict[str, Any]:
    (doc,) = yaml_documents(COMPOSE)
    return doc


def test_every_yaml_file_in_infra_parses() -> None:
    paths = sorted(INFRA.rglob("*.yaml"))
    assert COMPOSE in paths and len(paths) >= 6
    for path in paths:
        yaml_documents(path)


def test_every_service_names_what_it_runs_and_what_it_waits_for_exists() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "redis", "minio", "migrate", "api", "worker"} <= set(services)
    for name, service in services.items():
        assert "image" in service, f"service {name} has no image"
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services, f"{name} waits for {needed}, which is no service"
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in services[needed], f"{needed} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if ":" in volume and not source.startswith((".", "/")):
                assert source in doc["volumes"], f"volume {source} is not declared"


def test_the_autan_services_build_infra_dockerfile_and_run_its_commands() -> None:
    services = compose()["services"]
    autan = {name: s for name, s in services.items() if s["image"] == "autan:local"}
    assert set(autan) == {"migrate", "api", "worker"}
    for name, service in autan.items():
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            INFRA / "Dockerfile"
        )
        assert service["command"][0] in AUTAN_IMAGE_COMMANDS, name
        assert (INFRA / f"{service['env_file']}.example").is_file()
        assert service["environment"]["AUTAN_STORAGE_URL"].startswith("s3://")
    assert autan["migrate"]["command"] == ["autan", "migrate"]
    assert autan["worker"]["command"] == ["autan", "worker"]
    assert autan["worker"]["privileged"] is True and autan["worker"]["user"] == "0:0"
    assert "privileged" not in autan["api"]
    assert autan["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "/livez" in " ".join(autan["api"]["healthcheck"]["test"])


def test_every_variable_compose_needs_is_in_the_example_env_file() -> None:
    needed = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    assert needed == {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD"}
    example = (INFRA / "compose.env.example").read_text()
    given = set(re.findall(r"^([A-Z_0-9]+)=", example, flags=re.M))
    assert needed <= given
    assert "compose.env" in (ROOT / ".gitignore").read_text()
