"""The Kubernetes manifests in infra/k8s: valid against the Kubernetes schemas, and wired to
each other and to the code (probes, commands, config, the autoscaler's metric)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from orchestrator.config import OrchestratorSettings
from tests.infra.deploy_files import K8S, ROOT, manifests, one, yaml_documents

VERSION = kubernetes_validate.latest_version()


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    result: dict[str, Any] = only
    return result


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    kinds = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_documents(path):
            kubernetes_validate.validate(doc, VERSION, strict=True)
            kinds.append(doc["kind"])
    for wanted in ("Deployment", "Job", "Secret", "ConfigMap", "HorizontalPodAutoscaler"):
        assert wanted in kinds, f"no {wanted} in infra/k8s"


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The check above could fail: a wrong type and an unknown field are each refused."""
    api = one("Deployment", "autan-api")
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["replicas"] = "two"
    unknown = copy.deepcopy(api)
    container(unknown)["livenesProbe"] = container(unknown).pop("livenessProbe")
    for bad in (wrong_type, unknown):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, VERSION, strict=True)


def test_the_api_has_separate_liveness_and_readiness_probes_on_its_port() -> None:
    api = container(one("Deployment", "autan-api"))
    (port,) = api["ports"]
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert api[probe]["httpGet"] == {"path": path, "port": port["name"]}
    assert str(port["containerPort"]) in api["command"]
    service = one("Service", "autan-api")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert (
        service["spec"]["selector"]
        == one("Deployment", "autan-api")["spec"]["selector"]["matchLabels"]
    )
    routes = (ROOT / "web" / "routes" / "health.py").read_text()
    assert '"/livez"' in routes and '"/readyz"' in routes


def test_the_worker_runs_as_root_in_a_privileged_container_and_the_api_does_not() -> None:
    worker = container(one("Deployment", "autan-worker"))
    assert worker["command"] == ["autan", "worker"]
    assert worker["securityContext"]["privileged"] is True
    assert worker["securityContext"]["runAsUser"] == 0
    for name, kind in (("autan-api", "Deployment"), ("autan-migrate", "Job")):
        workload = one(kind, name)
        assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
        assert pod_spec(workload)["securityContext"]["runAsUser"] == 10001  # infra/Dockerfile's
        assert container(workload)["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_migration_job_runs_autan_migrate_with_the_same_settings() -> None:
    job = container(one("Job", "autan-migrate"))
    assert job["command"] == ["autan", "migrate"]
    api = container(one("Deployment", "autan-api"))
    assert job["image"] == api["image"] == container(one("Deployment", "autan-worker"))["image"]
    assert job["envFrom"] == api["envFrom"][:2]


def test_every_config_and_secret_a_pod_names_exists() -> None:
    defined = {(m["kind"], m["metadata"]["name"]) for m in manifests()}
    used = 0
    for workload in manifests():
        if workload["kind"] not in ("Deployment", "Job"):
            continue
        for source in container(workload)["envFrom"]:
            for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if ref in source:
                    assert (kind, source[ref]["name"]) in defined
                    used += 1
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in defined
    assert used >= 7


def test_the_autoscaler_scales_the_workers_on_the_metric_the_api_exports() -> None:
    hpa = one("HorizontalPodAutoscaler", "autan-worker")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "autan-worker",
    }
    (metric,) = hpa["metrics"]
    assert metric["external"]["metric"]["name"] == "autan_queue_depth"
    assert '"autan_queue_depth"' in (ROOT / "web" / "metrics.py").read_text()
    queue = metric["external"]["metric"]["selector"]["matchLabels"]["queue"]
    config = one("ConfigMap", "autan-config")["data"]
    assert (
        queue
        == config["AUTAN_QUEUE_NAME"]
        == OrchestratorSettings.model_fields["queue_name"].default
    )
    assert hpa["minReplicas"] >= 1  # /readyz wants a worker that answers
