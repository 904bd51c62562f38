"""The compose deployment, read as compose would: services, mounts, ports and wiring agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from gateway.config import load_config
from gateway.secret_files import CLI_SECRETS
from tests.deploy.chart import ROOT, container, one, render

DEPLOY = ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
FLEET: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.fleet.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path, for the ./relative bind mounts (named volumes left out)."""
    out = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        if source.startswith("."):
            out[target] = (DEPLOY / source).resolve()
    return out


def named_volumes(service: dict[str, Any]) -> set[str]:
    return {
        spec.split(":")[0] for spec in service.get("volumes", []) if not spec.startswith((".", "/"))
    }


def listen_port(service: dict[str, Any]) -> int:
    args = " ".join(map(str, service.get("command", [])))
    found = re.search(r"--port[= ](\d+)", args)
    assert found, f"no --port in {args}"
    return int(found[1])


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind a container path, through the service's bind mounts."""
    for target, source in sorted(bind_mounts(service).items(), key=lambda t: -len(t[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted")


def test_the_whole_system_is_there() -> None:
    assert {"gateway", "vllm", "prometheus", "grafana"} <= set(SERVICES)
    for name, service in SERVICES.items():
        assert service.get("image"), f"{name}: no image"


def test_bind_mounts_exist_and_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    used: set[str] = set()
    for name, service in SERVICES.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
        used |= named_volumes(service)
    assert used == declared


def test_gateway_image_builds_from_the_repository() -> None:
    build = SERVICES["gateway"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    dockerfile = (context / build["dockerfile"]).read_text()
    # The base: python:3.11-slim, directly or as the default of ARG BASE (a machine without
    # Docker Hub passes its own, deploy/image/build-local.sh).
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    default = re.search(r"^ARG BASE=(\S+)", dockerfile, re.M)
    assert base is not None
    image = default[1] if base[1] == "${BASE}" and default else base[1]
    assert image.startswith("python:3.11-slim"), image
    assert re.search(r'^RUN pip install "\.\$\{EXTRAS\}"', dockerfile, re.M)
    assert re.search(r'^ARG EXTRAS=""', dockerfile, re.M)  # the gateway image skips torch
    assert SERVICES["trainer"]["build"]["args"] == {"EXTRAS": "[train]"}
    assert re.search(r"^USER 10001", dockerfile, re.M)
    # Every file the Dockerfile copies exists and is let through its .dockerignore.
    ignore = (DEPLOY / "Dockerfile.gateway.dockerignore").read_text().split()
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for src in line.split()[:-1]:
            assert (context / src).exists(), f"COPY {src}: missing"
            assert f"!{src.rstrip('/')}" in {i.rstrip("/") for i in ignore}
    # Compose and the chart start the same process.
    chart_gw = container(one(render(), "Deployment", "-gateway"), "gateway")
    assert SERVICES["gateway"]["command"][:3] == chart_gw["args"][:3]


def test_gateway_config_is_valid_and_its_secrets_come_from_compose() -> None:
    gateway = SERVICES["gateway"]
    config_path = host_path(gateway, "/etc/distill/distill.yaml")
    environment = {k: "x" for k in gateway["environment"]}
    config = load_config(config_path, environ={})
    named = [config.server.admin_token_env, config.server.api_keys_env]
    named += [u.api_key_env for u in config.upstreams.values()]
    for env_name in filter(None, named):
        # A docker secret file the gateway reads at start (NAME_FILE), never an env value.
        assert env_name not in environment, f"{env_name} must come from a secret file"
        secret = secret_behind(gateway, gateway["environment"][f"{env_name}_FILE"])
        assert secret in COMPOSE["secrets"], f"{env_name}: no compose secret {secret}"
    students = urlparse(config.upstreams["students"].base_url)
    assert students.hostname in SERVICES
    assert students.port == listen_port(SERVICES[students.hostname])
    # The store lives on a named volume, not in the container's (read-only) root.
    assert config.store.path.startswith("/data/")
    assert "distill-data" in named_volumes(gateway)


def test_vllm_serves_lora_adapters_on_the_gpu() -> None:
    vllm = SERVICES["vllm"]
    assert "--enable-lora" in vllm["command"]
    assert any(a.startswith("--max-loras=") for a in vllm["command"])
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    # Adapters registered by the gateway/trainer load in vLLM by the same path.
    assert "adapters:/adapters" in SERVICES["gateway"]["volumes"]
    assert "adapters:/adapters:ro" in vllm["volumes"]


def test_prometheus_scrapes_the_compose_services() -> None:
    prometheus = SERVICES["prometheus"]
    flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_file = host_path(prometheus, flag.split("=", 1)[1])
    config = yaml.safe_load(config_file.read_text())
    for rule_file in config["rule_files"]:
        assert (config_file.parent / rule_file).exists()
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in config["scrape_configs"]}
    for job, service in (("distill-gateway", "gateway"), ("distill-vllm", "vllm")):
        host, port = jobs[job][0].split(":")
        assert host == service and int(port) == listen_port(SERVICES[service])


def test_grafana_provisions_prometheus_and_the_dashboards() -> None:
    grafana = SERVICES["grafana"]
    datasources = yaml.safe_load(
        host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    url = urlparse(datasources[0]["url"])
    assert datasources[0]["type"] == "prometheus"
    assert url.hostname == "prometheus" and url.port == 9090
    providers = yaml.safe_load(
        host_path(grafana, "/etc/grafana/provisioning/dashboards/distill.yaml").read_text()
    )["providers"]
    board_dir = host_path(grafana, providers[0]["options"]["path"])
    assert board_dir == (DEPLOY / "grafana/dashboards").resolve()
    assert len(list(board_dir.glob("*.json"))) == 4
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home).exists()


def secret_behind(service: dict[str, Any], path: str) -> str:
    """The compose secret mounted at `path` (/run/secrets/<name>) for this service."""
    name = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/") and name in service.get("secrets", []), path
    return name


SECRET_NAME = re.compile(r"TOKEN|KEY|PASSWORD|DSN|DISTILL_STORE")  # a fleet URL has a password


@pytest.mark.parametrize("compose", [COMPOSE, FLEET], ids=["compose", "fleet-overlay"])
def test_secrets_are_files_and_ports_are_local(compose: dict[str, Any]) -> None:
    """No secret in an environment variable (docker inspect shows those), every published
    port on 127.0.0.1 only (Prometheus has no authentication)."""
    declared = COMPOSE["secrets"] | compose["secrets"]  # an overlay may use the base's secrets
    for name, service in compose["services"].items():
        for var, value in service.get("environment", {}).items():
            if SECRET_NAME.search(var):
                assert var.endswith(("_FILE", "_PATH")), f"{name}: {var} holds a secret value"
                assert secret_behind(service, str(value)) in declared
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on all"
    for secret in compose.get("secrets", {}).values():
        assert secret["file"].startswith("./secrets/")


def test_create_sh_writes_every_secret_compose_mounts(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    shutil.copytree(DEPLOY / "secrets", folder)
    done = subprocess.run(
        ["sh", str(folder / "create.sh")], input="sk-teacher\n", text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    declared = {Path(s["file"]).name for c in (COMPOSE, FLEET) for s in c["secrets"].values()}
    written = {p.name for p in folder.iterdir()} - {".gitignore", "create.sh"}
    assert written == declared
    assert (folder / "teacher_api_key").read_text() == "sk-teacher"
    password = (folder / "postgres_password").read_text()
    assert (folder / "postgres_dsn").read_text() == (
        f"postgresql://distill:{password}@postgres:5432/distill"
    )
    # The trainer's --store: the same database, the lake where the gateway replicas write.
    lake = FLEET["services"]["gateway"]["environment"]["DISTILL__STORE__PATH"]
    assert (folder / "distill_store").read_text() == (
        f"postgresql://distill:{password}@postgres:5432/distill?data_path={lake}"
    )
    assert all((p.stat().st_mode & 0o777) == 0o440 for p in folder.iterdir() if p.name in written)
    # Git never sees them.
    rules = [r for r in (DEPLOY / "secrets/.gitignore").read_text().splitlines() if r[:1] != "#"]
    assert rules == ["*", "!.gitignore", "!create.sh"]


def test_the_fleet_overlay_switches_the_gateway_to_the_fleet_store() -> None:
    gateway = {**SERVICES["gateway"]["environment"], **FLEET["services"]["gateway"]["environment"]}
    environ = {k: v for k, v in gateway.items() if k.startswith("DISTILL__")}
    config = load_config(
        host_path(SERVICES["gateway"], "/etc/distill/distill.yaml"), environ=environ
    )
    assert (config.store.format, config.store.path) == ("fleet", "/data/lake")
    dsn = gateway[f"{config.store.postgres_dsn_env}_FILE"]
    assert secret_behind(FLEET["services"]["gateway"], dsn) == "postgres_dsn"
    assert "ports" not in FLEET["services"]["postgres"]
    assert FLEET["services"]["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_vllm_runs_as_non_root_on_a_read_only_root() -> None:
    vllm = SERVICES["vllm"]
    assert vllm["user"] == "10001:10001" and vllm["cap_drop"] == ["ALL"]  # no NET_RAW
    assert vllm["read_only"] is True and "/tmp" in vllm["tmpfs"]
    mounts = [spec.split(":")[1] for spec in vllm["volumes"]]
    for var in ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "XDG_CACHE_HOME"):
        assert any(vllm["environment"][var].startswith(m + "/") for m in mounts), var


def test_volumes_written_by_uid_10001_are_handed_to_it_first() -> None:
    """Named volumes start root-owned; the one-shot volumes-init chowns each one a service
    running as 10001 writes, before those services start."""
    init = SERVICES["volumes-init"]
    chowned = set(init["entrypoint"][-1].split("&&")[0].split()[2:])
    mounted = {spec.split(":")[1]: spec.split(":")[0] for spec in init["volumes"]}
    for name in ("gateway", "vllm", "trainer"):
        service = SERVICES[name]
        assert service["depends_on"]["volumes-init"]["condition"] == (
            "service_completed_successfully"
        )
        for spec in service["volumes"]:
            source = spec.split(":")[0]
            if source.startswith(".") or spec.endswith(":ro"):
                continue
            assert source in mounted.values(), f"{name}: volume {source} is never chowned"
    assert chowned == set(mounted)


def as_mapping(value: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Compose's short list form (`depends_on: [a]`) as its long mapping form."""
    return value if isinstance(value, dict) else {name: {} for name in value}


def fleet_service(name: str) -> dict[str, Any]:
    """A service as compose merges compose.yaml and the fleet overlay: mappings key by key,
    secrets by name, anything else replaced by the overlay's."""
    base, over = SERVICES.get(name, {}), FLEET["services"].get(name, {})
    merged = {**base, **over}
    for key in ("environment", "depends_on"):
        merged[key] = {**as_mapping(base.get(key, {})), **as_mapping(over.get(key, {}))}
    merged["secrets"] = sorted(set(base.get("secrets", [])) | set(over.get("secrets", [])))
    return merged


FLEET_SERVICES = sorted(set(SERVICES) | set(FLEET["services"]))
REPLICAS = {
    name: fleet_service(name)
    for name in FLEET_SERVICES
    if fleet_service(name).get("command", [None])[0] == "serve"
}
PER_REPLICA = ("DISTILL__SERVER__REPLICA", "DISTILL__STORE__SPOOL_DIR")


def test_the_fleet_overlay_runs_several_gateway_replicas_on_one_store() -> None:
    assert len(REPLICAS) >= 2, sorted(REPLICAS)
    configs = {}
    for name, service in REPLICAS.items():
        environ = {k: v for k, v in service["environment"].items() if k.startswith("DISTILL__")}
        configs[name] = load_config(
            host_path(service, "/etc/distill/distill.yaml"), environ=environ
        )
        # On the fleet store, through the DSN secret, once PostgreSQL is up.
        dsn = service["environment"][f"{configs[name].store.postgres_dsn_env}_FILE"]
        assert secret_behind(service, dsn) == "postgres_dsn"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["volumes-init"]["condition"] == (
            "service_completed_successfully"
        )
    assert {(c.store.format, c.store.path) for c in configs.values()} == {("fleet", "/data/lake")}
    # Each its own name and its own spool, kept on the data volume across restarts.
    names = [c.server.replica for c in configs.values()]
    spools = [str(c.store.spool_path) for c in configs.values()]
    assert len(set(names)) == len(names) and None not in names
    assert len(set(spools)) == len(spools)
    assert all(spool.startswith("/data/spool/") for spool in spools)
    # Each published on its own local port.
    ports = [p for service in REPLICAS.values() for p in service["ports"]]
    assert len({p.rsplit(":", 1)[0] for p in ports}) == len(ports) == len(REPLICAS)
    assert all(p.startswith("127.0.0.1:") for p in ports)


def test_the_fleet_replicas_are_one_gateway_but_for_name_spool_and_port() -> None:
    first, *others = REPLICAS.values()
    for other in others:
        for key in sorted((set(first) | set(other)) - {"environment", "ports"}):
            assert first.get(key) == other.get(key), key
        same = {k: v for k, v in first["environment"].items() if k not in PER_REPLICA}
        assert {k: v for k, v in other["environment"].items() if k not in PER_REPLICA} == same


def test_the_fleet_prometheus_scrapes_every_replica() -> None:
    prometheus = fleet_service("prometheus")
    flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    fleet_config = yaml.safe_load(host_path(prometheus, flag.split("=", 1)[1]).read_text())
    base_config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {c["job_name"]: c for c in fleet_config["scrape_configs"]}
    targets = jobs["distill-gateway"]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{name}:{listen_port(s)}" for name, s in REPLICAS.items())
    # Everything else as in the one-gateway config.
    for config in (fleet_config, base_config):
        for job in config["scrape_configs"]:
            if job["job_name"] == "distill-gateway":
                job["static_configs"][0]["targets"] = ["..."]
    assert fleet_config == base_config
    assert prometheus["command"][1:] == SERVICES["prometheus"]["command"][1:]


def test_the_fleet_trainer_uses_the_fleet_store() -> None:
    trainer = fleet_service("trainer")
    assert trainer["depends_on"]["postgres"]["condition"] == "service_healthy"
    store = secret_behind(trainer, trainer["environment"]["DISTILL_STORE_FILE"])
    assert store in FLEET["secrets"]
    # The CLI reads DISTILL_STORE from that file; commands take it as their --store default.
    assert "DISTILL_STORE" in CLI_SECRETS
    # Its volumes are handed to uid 10001 like the others'.
    init = {spec.split(":")[0] for spec in SERVICES["volumes-init"]["volumes"]}
    for service in (*REPLICAS.values(), trainer):
        assert named_volumes(service) <= init
