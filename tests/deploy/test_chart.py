"""The Helm chart, rendered by Helm's engine for several value sets and checked object by object."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gateway.config import parse_config
from tests.deploy.chart import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    container,
    env_of,
    find,
    is_crd,
    notes,
    one,
    render,
    validate,
)

THREE_REPLICAS: dict[str, Any] = {
    "gateway": {"replicas": 3},
    "storage": {"logs": {"accessModes": ["ReadWriteMany"]}},
    "fleet": {"enabled": True, "postgres": {"existingSecret": "pg-dsn"}},
}
FLEET_EVERYTHING: dict[str, Any] = {
    "gateway": {"autoscaling": {"enabled": True}},
    "storage": {"logs": {"accessModes": ["ReadWriteMany"]}},
    "fleet": {"enabled": True, "postgres": {"internal": {"enabled": True}}},
    "networkPolicy": {"enabled": True},
    "ingress": {"enabled": True, "hosts": ["distill.example.com"]},
    "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]},
}
VLLM_OFF: dict[str, Any] = {
    "vllm": {"enabled": False},
    "config": {"upstreams": {"students": None}},
}
MONITORING_OFF: dict[str, Any] = {
    "serviceMonitor": {"enabled": False},
    "prometheusRule": {"enabled": False},
    "dashboards": {"enabled": False},
}
EXTERNAL_STUDENTS: dict[str, Any] = {
    "vllm": {"enabled": False},
    "storage": {"adapters": {"enabled": False}, "logs": {"existingClaim": "my-logs"}},
    "config": {
        "upstreams": {"students": {"base_url": "http://vllm.gpu.svc:8000/v1"}},
        "routes": [
            {
                "name": "support-triage",
                "match": ["gpt-4o"],
                "teacher": {"upstream": "teacher", "model": "gpt-4o"},
                "students": [
                    {
                        "name": "triage-v1",
                        "upstream": "students",
                        "model": "triage-v1",
                        "weight": 5,
                    },
                ],
                "shadow": {"sample_rate": 0.1, "agreement": "label"},
            }
        ],
    },
}
VALUE_SETS = {
    "defaults": None,
    "three-replicas": THREE_REPLICAS,
    "fleet-everything": FLEET_EVERYTHING,
    "vllm-off": VLLM_OFF,
    "monitoring-off": MONITORING_OFF,
    "external-students": EXTERNAL_STUDENTS,
}


def distill_yaml(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(docs, "ConfigMap", "-gateway")
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["distill.yaml"])
    return loaded


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_manifest_is_valid_kubernetes(values: dict[str, Any] | None, kube: str) -> None:
    docs = render(values)
    checked = 0
    for doc in docs:
        if is_crd(doc):
            continue
        validate(doc, kube)
        checked += 1
    assert checked >= 4


def test_the_validator_rejects_a_misspelt_field() -> None:
    """The check above is real: a typo in a pod spec fails the strict Kubernetes schema."""
    deployment = copy.deepcopy(one(render(), "Deployment", "-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, KUBE_VERSIONS[-1])


def test_defaults_deploy_the_whole_system() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("Deployment") == 2  # gateway, vLLM
    assert kinds.count("Service") == 2
    assert kinds.count("PersistentVolumeClaim") == 2  # log store, adapters
    assert kinds.count("ServiceMonitor") == 2
    assert kinds.count("PrometheusRule") == 1
    assert kinds.count("ConfigMap") == 1 + 4  # distill.yaml + four dashboards
    assert "Secret" not in kinds  # secrets are referenced, never rendered
    assert kinds.count("Pod") == 1  # the `helm test` hook
    assert "PodDisruptionBudget" not in kinds  # one replica: nothing to keep up in a drain


def test_allow_open_reaches_the_config_and_serve_takes_every_arg() -> None:
    # `distill serve` has no --allow-open flag: the chart sets server.allow_open by its override,
    # and every argument it passes must be one `distill serve` accepts.
    from gateway.serve_cli import serve

    gw = container(
        one(render({"gateway": {"allowOpen": True}}), "Deployment", "-gateway"), "gateway"
    )
    assert env_of(gw)["DISTILL__SERVER__ALLOW_OPEN"] == "true"
    known = {opt for param in serve.params for opt in getattr(param, "opts", [])}
    flags = [a for a in gw["args"] if a.startswith("--")]
    assert flags and set(flags) <= known, set(flags) - known


def test_gateway_deployment_shape() -> None:
    docs = render()
    dep = one(docs, "Deployment", "-gateway")
    spec = dep["spec"]["template"]["spec"]
    gw = container(dep, "gateway")
    assert dep["spec"]["replicas"] == 1
    assert gw["command"] == ["distill"]
    assert gw["args"][:3] == ["serve", "--config", "/etc/distill/distill.yaml"]
    assert "--allow-open" not in gw["args"]
    assert gw["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gw["resources"]["requests"]["cpu"] == "500m"
    assert gw["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = env_of(gw)
    assert env["DISTILL__SERVER__REPLICA"] == "$(POD_NAME)"
    # Secrets are files the gateway reads at start (NAME_FILE), never env values.
    mounts = {m["name"]: m["mountPath"] for m in gw["volumeMounts"]}
    projected = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]
    files = {i["path"] for src in projected["sources"] for i in src["secret"]["items"]}
    for name, (secret, key) in {
        "DISTILL_ADMIN_TOKEN": ("distill-secrets", "admin-token"),
        "TEACHER_API_KEY": ("distill-secrets", "teacher-api-key"),
    }.items():
        assert name not in env
        assert env[f"{name}_FILE"] == f"{mounts['secrets']}/{secret}/{key}"
        assert f"{secret}/{key}" in files
    # One DuckDB file on a ReadWriteOnce claim: no two pods may hold it during an update.
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in spec["volumes"]}
    assert claims["data"] == {"claimName": "prod-distill-logs"}
    svc = one(docs, "Service", "-gateway")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_config_checksum_follows_the_config() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        dep = one(render(values), "Deployment", "-gateway")
        annotations: dict[str, str] = dep["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    base = checksum(None)
    assert len(base) == 64
    assert checksum({"gateway": {"resources": {"limits": {"memory": "4Gi"}}}}) == base
    assert checksum({"config": {"capture": {"sample_rate": 0.5}}}) != base


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_rendered_distill_yaml_is_accepted_by_the_gateway(values: dict[str, Any] | None) -> None:
    docs = render(values)
    dep = one(docs, "Deployment", "-gateway")
    env = env_of(container(dep, "gateway"))
    # What the pod sees: the ConfigMap plus the chart's plain env overrides, pod name filled in.
    environ = {
        k: v.replace("$(POD_NAME)", "prod-distill-gateway-7d9f-abcde")
        for k, v in env.items()
        if k.startswith("DISTILL__") and isinstance(v, str)
    }
    config = parse_config(distill_yaml(docs), source="chart", environ=environ)
    assert config.server.replica == "prod-distill-gateway-7d9f-abcde"
    assert str(config.upstreams["teacher"].base_url) == "https://api.openai.com/v1"


def test_three_replicas_run_the_fleet_store() -> None:
    docs = render(THREE_REPLICAS)
    dep = one(docs, "Deployment", "-gateway")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    store = distill_yaml(docs)["store"]
    assert (store["format"], store["path"]) == ("fleet", "/data/lake")
    assert store["postgres_dsn_env"] == "DISTILL_POSTGRES_DSN"
    env = env_of(container(dep, "gateway"))
    assert env["DISTILL_POSTGRES_DSN_FILE"] == "/run/secrets/distill/pg-dsn/dsn"
    assert env["DISTILL__STORE__SPOOL_DIR"] == "/data/spool/$(POD_NAME)"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert one(docs, "PersistentVolumeClaim", "-logs")["spec"]["accessModes"] == ["ReadWriteMany"]
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"


def test_one_replica_keeps_the_duckdb_file() -> None:
    store = distill_yaml(render())["store"]
    assert (store["format"], store["path"]) == ("duckdb", "/data/distill.duckdb")


def test_several_replicas_on_a_single_writer_volume_fail_at_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="lacks ReadWriteMany"):
        render({**THREE_REPLICAS, "storage": {}})


def test_vllm_deployment_serves_several_adapters_on_gpus() -> None:
    docs = render({"vllm": {"maxLoras": 6, "maxLoraRank": 32, "tensorParallelSize": 2}})
    dep = one(docs, "Deployment", "-vllm")
    vllm = container(dep, "vllm")
    args = vllm["args"]
    for flag in (
        "--enable-lora",
        "--max-loras=6",
        "--max-lora-rank=32",
        "--max-cpu-loras=16",
        "--tensor-parallel-size=2",
        "--served-model-name=base",
    ):
        assert flag in args
    assert vllm["image"] == "vllm/vllm-openai:v0.32.0"
    assert env_of(vllm)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert vllm["startupProbe"]["httpGet"]["path"] == "/health"
    # The adapters a trainer registers under /adapters load in vLLM by that same path.
    gw_mounts = {
        m["name"]: m["mountPath"]
        for m in container(one(docs, "Deployment", "-gateway"), "gateway")["volumeMounts"]
    }
    vllm_mounts = {m["name"]: m["mountPath"] for m in vllm["volumeMounts"]}
    assert gw_mounts["adapters"] == vllm_mounts["adapters"] == "/adapters"
    assert distill_yaml(docs)["upstreams"]["students"]["base_url"] == (
        "http://prod-distill-vllm:8000/v1"
    )


def test_vllm_off_renders_no_vllm_objects() -> None:
    docs = render(VLLM_OFF)
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in docs}
    assert "vllm" not in components and "gateway" in components
    # The vLLM dashboard stays: students may run on a vLLM deployed elsewhere.
    assert find(docs, "ConfigMap", "-dashboard-distill-vllm")
    assert len(find(docs, "ServiceMonitor")) == 1
    assert "students" not in distill_yaml(docs)["upstreams"]


def test_vllm_off_with_an_empty_student_url_says_what_to_do() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"upstreams\.students\.base_url is empty"):
        render({"vllm": {"enabled": False}})


def test_monitoring_objects_are_optional() -> None:
    docs = render(MONITORING_OFF)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert [d["metadata"]["name"] for d in find(docs, "ConfigMap")] == ["prod-distill-gateway"]


def test_service_monitors_select_the_services_they_scrape() -> None:
    docs = render()
    for component in ("gateway", "vllm"):
        sm = one(docs, "ServiceMonitor", f"-{component}")
        svc = one(docs, "Service", f"-{component}")
        labels = svc["metadata"]["labels"]
        assert sm["spec"]["selector"]["matchLabels"].items() <= labels.items()
        endpoint = sm["spec"]["endpoints"][0]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["relabelings"][0]["replacement"] == f"distill-{component}"
    labelled = render({"serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}}})
    for sm in find(labelled, "ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_is_the_compose_alert_file() -> None:
    rule = one(render(), "PrometheusRule")
    source = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"] == source
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert r["alert"].startswith("Distill") and r["expr"] and r["labels"]["severity"]


def test_dashboard_configmaps_carry_the_dashboards_for_the_sidecar() -> None:
    cms = [cm for cm in find(render(), "ConfigMap") if "-dashboard-" in cm["metadata"]["name"]]
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert len(cms) == len(files) == 4
    by_key = {k: v for cm in cms for k, v in cm["data"].items()}
    for f in files:
        assert by_key[f.name] == f.read_text().rstrip("\n")
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"config": {"upstreams": {"teacher": {"base_url": None}}}},
            "at '/config/upstreams/teacher': missing property 'base_url'",
        ),
        (
            {"config": {"upstreams": {"teacher": {"base_url": ""}}}},
            "at '/config/upstreams/teacher/base_url': '' does not match pattern",
        ),
        (
            {"config": {"upstreams": {"teacher": {"base_url": "api.openai.com"}}}},
            "does not match pattern",
        ),
        ({"gateway": {"replicas": -1}}, "at '/gateway/replicas': minimum: got -1, want 1"),
        ({"gateway": {"replicas": 0}}, "at '/gateway/replicas': minimum: got 0, want 1"),
        ({"gateway": {"replica": 3}}, "at '/gateway': additional properties 'replica' not allowed"),
        ({"vllm": {"enabeld": False}}, "at '/vllm': additional properties 'enabeld' not allowed"),
        ({"grafana": {}}, "additional properties 'grafana' not allowed"),
        ({"config": {"routez": []}}, "at '/config': additional properties 'routez' not allowed"),
        ({"vllm": {"maxLoraRank": 12}}, "at '/vllm/maxLoraRank'"),
        ({"gateway": {"secretEnv": [{"name": "X", "secretName": "s"}]}}, "missing property 'key'"),
        ({"serviceMonitor": {"interval": "fast"}}, "at '/serviceMonitor/interval'"),
    ],
)
def test_bad_values_fail_at_render_with_the_schema_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert message in str(caught.value)


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, strict=True, kube_version="v1.33.0")
    errors = [m for m in report["messages"] if m["severity"] >= 2]
    assert not errors and not report["errors"], report


def test_notes_tell_how_to_reach_the_gateway() -> None:
    text = notes()
    assert "OPENAI_BASE_URL=http://prod-distill-gateway.distill.svc:8080/v1" in text
    assert "create secret generic distill-secrets" in text
    assert "the fleet store (3 replicas)" in notes(THREE_REPLICAS)
    assert "helm test prod" in notes()
