"""deploy/k8s renders with kustomize for every overlay, every object validates against its schema
(Kubernetes' own, and the operators' CRD schemas vendored in deploy/k8s/crd-schemas), and the
manifests agree with the code they deploy: settings that exist, queues the consumers declare, the
sync table the scaler counts."""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.30.0"

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)


@functools.cache
def _rendered_text(overlay: str) -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def render(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_rendered_text(overlay)) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def _strict(schema: Any) -> Any:
    """The API server prunes unknown fields of a custom resource silently; a typo would vanish
    without a word. Validate as if unknown fields were errors, except where the CRD keeps them."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in (K8S / "crd-schemas").glob("*.json"):
        doc = json.loads(path.read_text())
        schemas[(doc["apiVersion"], doc["kind"])] = _strict(copy.deepcopy(doc["schema"]))
    return schemas


CRDS = crd_schemas()


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_every_object_validates_against_its_schema(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    assert docs, f"{overlay} renders nothing"
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
        if key in CRDS:
            errors = sorted(jsonschema.Draft7Validator(CRDS[key]).iter_errors(doc), key=str)
            assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{where}: {e.message} at {list(e.path)}")


def test_crd_schemas_catch_a_misspelt_field() -> None:
    docs = render("prod")
    cluster = copy.deepcopy(by_kind(docs, "Cluster")["soc-postgres"])
    cluster["spec"]["instanses"] = 3
    validator = jsonschema.Draft7Validator(CRDS[("postgresql.cnpg.io/v1", "Cluster")])
    assert any("instanses" in e.message for e in validator.iter_errors(cluster))


def test_every_workload_is_hardened_probed_and_sized(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    workloads = list(by_kind(docs, "Deployment").values()) + list(by_kind(docs, "Job").values())
    assert len(by_kind(docs, "Deployment")) == 8
    for doc in workloads:
        pod = doc["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in containers(doc):
            where = f"{overlay}: {doc['metadata']['name']}/{c['name']}"
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert ":" in c["image"] and not c["image"].endswith(":latest"), where
            if doc["kind"] == "Deployment":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in c, f"{where} has no {probe}"
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_deployment_has_a_disruption_budget_that_selects_it(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    budgets = by_kind(docs, "PodDisruptionBudget")
    for name, dep in by_kind(docs, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        matching = [
            b
            for b in budgets.values()
            if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        assert len(matching) == 1, f"{name}: {len(matching)} disruption budgets"


SECRET_ENV = re.compile(r"PASSWORD|SECRET|CRYPTO_KEYS|AMQP_URL")


def test_secrets_only_by_reference(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    for doc in list(by_kind(docs, "Deployment").values()) + list(by_kind(docs, "Job").values()):
        for c in containers(doc):
            for env in c.get("env", []):
                if SECRET_ENV.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], (
                        f"{overlay}: {doc['metadata']['name']} sets {env['name']} in plain text"
                    )
    if overlay == "prod":
        assert not by_kind(docs, "Secret"), "prod must not carry secrets: they are created out of band"
        assert by_kind(docs, "ConfigMap")["soc-config"]["data"]["SOC_ENV"] == "prod"


def test_network_is_closed_by_default_and_only_the_gateway_is_open(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:  # open to every source
                assert policy["spec"]["podSelector"]["matchLabels"] == {
                    "app.kubernetes.io/name": "gateway"
                }, name
    vendor = policies["ingestors-to-vendors"]["spec"]["egress"][0]["to"][0]["ipBlock"]
    assert "169.254.0.0/16" in vendor["except"] and "10.0.0.0/8" in vendor["except"]
    db_clients = {
        d["metadata"]["name"]
        for d in by_kind(docs, "Deployment").values()
        if d["spec"]["template"]["metadata"]["labels"].get("soc-portal/db-client") == "true"
    }
    assert "gateway" not in db_clients and "tenant-api" in db_clients


def test_scalers_follow_the_code(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    from soc_shared.sync import sync_state_table
    from soc_tenant.readmodel.ingest import QUEUES

    _, docs = rendered
    deployments = by_kind(docs, "Deployment")
    assert set(by_kind(docs, "HorizontalPodAutoscaler")) == {"gateway", "tenant-api"}
    scaled = by_kind(docs, "ScaledObject")
    for name, so in scaled.items():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments, name
    queues = {t["metadata"]["queueName"] for t in scaled["tenant-consumer"]["spec"]["triggers"]}
    assert queues == set(QUEUES), "the consumer scales on exactly the queues the read model consumes"
    for ingestor in ("siem-ingest", "soar-ingest", "itsm-ingest", "threatintel"):
        query = scaled[ingestor]["spec"]["triggers"][0]["metadata"]["query"]
        schema = ingestor.replace("-", "_")
        assert f"FROM {schema}.{sync_state_table.name} " in query
        for column in ("enabled", "next_run_at"):
            assert column in sync_state_table.c, column


SETTINGS = {
    "SOC_GATEWAY_": "soc_gateway.config",
    "SOC_AUTH_": "soc_auth.config",
    "SOC_TENANT_": "soc_tenant.config",
    "SOC_SIEM_INGEST_": "soc_siem_ingest.config",
    "SOC_SOAR_INGEST_": "soc_soar_ingest.config",
    "SOC_ITSM_INGEST_": "soc_itsm_ingest.config",
    "SOC_THREATINTEL_": "soc_threatintel.config",
}


def _suite_wide_names() -> str:
    """Every source file of the suite, where a suite-wide SOC_* variable must be read."""
    return "\n".join(
        p.read_text() for base in ("libs", "services", "gateway") for p in (ROOT / base).rglob("src/**/*.py")
    )


def test_every_variable_set_is_one_the_code_reads() -> None:
    import importlib

    source = _suite_wide_names()
    docs = render("prod") + render("dev")
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            names |= set(doc.get("data", {}))
        if doc["kind"] in ("Deployment", "Job"):
            for c in containers(doc):
                names |= {e["name"] for e in c.get("env", [])}
    for name in sorted(names):
        short = name.removeprefix("SOC_")
        if f'"{name}"' in source or f'"{short}"' in source:
            continue  # a suite-wide variable (SOC_AUTH_URL, SOC_DB_HOST, ...)
        prefix = next((p for p in SETTINGS if name.startswith(p)), None)
        assert prefix, f"{name} is read by no service"
        if prefix:
            settings = importlib.import_module(SETTINGS[prefix]).Settings
            field = name.removeprefix(prefix).lower()
            assert field in settings.model_fields, f"{name}: {settings.__module__} has no setting {field!r}"


def test_migration_job_migrates_every_service_after_provisioning() -> None:
    job = by_kind(render("prod"), "Job")["soc-migrate"]
    steps = [c["command"] for c in job["spec"]["template"]["spec"]["initContainers"]]
    assert steps[0][:3] == ["python", "-m", "soc_shared.provision"]
    migrated = {cmd[2] for cmd in steps[1:] if cmd[-1] == "migrate"}
    assert migrated == {
        "soc_auth",
        "soc_tenant",
        "soc_siem_ingest",
        "soc_soar_ingest",
        "soc_itsm_ingest",
        "soc_threatintel",
    }
    for dep in by_kind(render("prod"), "Deployment").values():
        assert dep["spec"]["template"]["spec"]["containers"][0]["command"][-1].startswith("soc_")
