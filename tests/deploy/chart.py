"""Renders the Helm chart with Helm's own engine and validates manifests against Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "distill"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.27", "1.33")
CRD_GROUPS = ("monitoring.coreos.com/", "gateway.networking.k8s.io/")

Manifest = dict[str, Any]


def render(values: dict[str, Any] | None = None, *, name: str = "prod") -> list[Manifest]:
    """Every object the chart renders for `values` (schema-checked by Helm first)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=name, namespace="distill")
    docs: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="prod", namespace="distill")
    return rendered["distill/templates/NOTES.txt"]


def find(docs: list[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def one(docs: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
    return found[0]


def is_crd(doc: Manifest) -> bool:
    return str(doc["apiVersion"]).startswith(CRD_GROUPS)


def validate(doc: Manifest, version: str) -> None:
    """Strict schema check (unknown fields fail); raises kubernetes_validate.ValidationError."""
    kubernetes_validate.validate(doc, version, strict=True)


def container(deployment: Manifest, name: str) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env_of(c: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
