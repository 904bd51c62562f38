"""The chart's fleet shape and hardening: the fleet store or a refusal, the in-chart PostgreSQL,
autoscaling, NetworkPolicies, Ingress/HTTPRoute, `helm test`, a non-root read-only vLLM."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import container, env_of, find, one, render
from tests.deploy.test_chart import FLEET_EVERYTHING, THREE_REPLICAS, distill_yaml


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"gateway": {"replicas": 2}},
            r"gateway.replicas is 2 \(autoscaling.enabled: false\) but fleet.enabled is false",
        ),
        ({"gateway": {"autoscaling": {"enabled": True}}}, "but fleet.enabled is false"),
        ({"fleet": {"enabled": True}}, "no PostgreSQL is given"),
        (
            {
                "fleet": {
                    "enabled": True,
                    "postgres": {"existingSecret": "pg", "internal": {"enabled": True}},
                }
            },
            "choose one PostgreSQL",
        ),
        ({"httpRoute": {"enabled": True}}, "httpRoute.parentRefs is empty"),
    ],
)
def test_shapes_that_would_split_the_fleet_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_the_in_chart_postgres_serves_the_fleet() -> None:
    docs = render(FLEET_EVERYTHING)
    sts = one(docs, "StatefulSet", "-postgres")
    pg = container(sts, "postgres")
    assert env_of(pg)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres/password"
    assert pg["securityContext"]["readOnlyRootFilesystem"] is True
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    svc = one(docs, "Service", "-postgres")
    gw_env = env_of(container(one(docs, "Deployment", "-gateway"), "gateway"))
    assert gw_env["DISTILL_POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "distill-postgres", "key": "password"}
    }
    dsn = (
        f"postgresql://distill:$(DISTILL_POSTGRES_PASSWORD)@{svc['metadata']['name']}:5432/distill"
    )
    assert gw_env["DISTILL_POSTGRES_DSN"] == dsn
    assert "Secret" not in {d["kind"] for d in docs}
    assert distill_yaml(docs)["store"]["format"] == "fleet"


def test_autoscaling_replaces_the_fixed_replica_count() -> None:
    docs = render(FLEET_EVERYTHING)
    dep = one(docs, "Deployment", "-gateway")
    assert "replicas" not in dep["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert one(docs, "PodDisruptionBudget")
    assert not find(render(THREE_REPLICAS), "HorizontalPodAutoscaler")


def test_network_policies_admit_only_the_gateway_to_vllm_and_postgres() -> None:
    assert not find(render(), "NetworkPolicy")
    docs = render(FLEET_EVERYTHING)
    gateway_labels = one(docs, "Deployment", "-gateway")["spec"]["selector"]["matchLabels"]
    for component in ("vllm", "postgres"):
        policy = one(docs, "NetworkPolicy", f"-{component}")
        peers = policy["spec"]["ingress"][0]["from"]
        assert peers[0] == {"podSelector": {"matchLabels": gateway_labels}}
        namespaces = [p for p in peers[1:] if "namespaceSelector" in p]
        assert len(namespaces) == (1 if component == "vllm" else 0)  # Prometheus scrapes vLLM
    gateway = one(docs, "NetworkPolicy", "-gateway")
    assert "from" not in gateway["spec"]["ingress"][0]  # clients from anywhere by default
    apps = {"namespaceSelector": {"matchLabels": {"team": "apps"}}}
    limited = render(
        {**FLEET_EVERYTHING, "networkPolicy": {"enabled": True, "gatewayFrom": [apps]}}
    )
    peers = one(limited, "NetworkPolicy", "-gateway")["spec"]["ingress"][0]["from"]
    test_pod = one(limited, "Pod", "-test")["metadata"]["labels"]
    assert peers[0] == apps and len(peers) == 3  # the apps, Prometheus, the helm test pod
    assert peers[2]["podSelector"]["matchLabels"].items() <= test_pod.items()


def test_ingress_and_http_route_point_at_the_gateway_service() -> None:
    assert not find(render(), "Ingress") and not find(render(), "HTTPRoute")
    docs = render(FLEET_EVERYTHING)
    svc = one(docs, "Service", "-gateway")["metadata"]["name"]
    rule = one(docs, "Ingress")["spec"]["rules"][0]
    assert rule["host"] == "distill.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == svc
    route = one(docs, "HTTPRoute")["spec"]
    assert route["parentRefs"] == [{"name": "public"}]
    assert route["rules"][0]["backendRefs"][0]["name"] == svc


def test_helm_test_asks_the_gateway_service_for_readyz() -> None:
    docs = render()
    pod = one(docs, "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    svc = one(docs, "Service", "-gateway")["metadata"]["name"]
    assert f"http://{svc}:8080" in script and "/readyz" in script
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_vllm_runs_as_non_root_on_a_read_only_root() -> None:
    dep = one(render(), "Deployment", "-vllm")
    pod = dep["spec"]["template"]["spec"]
    vllm = container(dep, "vllm")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert vllm["securityContext"]["readOnlyRootFilesystem"] is True
    assert vllm["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # no NET_RAW
    mounts = {m["mountPath"] for m in vllm["volumeMounts"]}
    env = env_of(vllm)
    for cache in ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "XDG_CACHE_HOME"):
        assert any(env[cache].startswith(m + "/") for m in mounts), cache
    assert "/tmp" in mounts


def test_adapters_volume_is_writable_by_uid_10001() -> None:
    gw = one(render(), "Deployment", "-gateway")["spec"]["template"]["spec"]
    assert gw["securityContext"]["fsGroup"] == 10001 == gw["securityContext"]["runAsUser"]
    assert gw["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


@pytest.mark.parametrize(("release", "expected"), [(None, "kube-prometheus-stack"), ("", None)])
def test_monitoring_objects_carry_the_prometheus_release_label(
    release: str | None, expected: str | None
) -> None:
    docs = render(None if release is None else {"prometheusRelease": release})
    for doc in [one(docs, "PrometheusRule"), *find(docs, "ServiceMonitor")]:
        assert doc["metadata"]["labels"].get("release") == expected
