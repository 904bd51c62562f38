"""`distill.yaml`: the one config file, validated at start with errors that name the key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.answers import Mode
from gateway.redact import RedactPattern

ENV_PREFIX = "DISTILL__"


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message says where and why."""


class _Section(BaseModel):
    # NaN and infinities are refused in every number (a NaN compares false with every bound).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ApiKeyConfig(_Section):
    name: str
    sha256: str  # hex digest of the key: `distill keys hash` prints it
    rate_per_s: float | None = Field(None, gt=0)  # sustained requests a second
    burst: float | None = Field(None, gt=0)  # requests allowed at once (default: rate)
    max_request_bytes: int | None = Field(None, gt=0)  # body limit for this key

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("must be the 64-hex-digit SHA-256 of the key, not the key itself")
        return value


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    admin_token_env: str | None = "DISTILL_ADMIN_TOKEN"
    api_keys: list[ApiKeyConfig] = []  # client keys by digest, with per-key limits
    api_keys_env: str | None = None  # env var holding comma-separated client API keys
    allow_open: bool = False  # serve without client auth on a non-loopback address
    replica: str | None = None  # this process's name in log rows; default: hostname-pid
    max_request_bytes: int = Field(8 * 1024 * 1024, gt=0)
    cors_origins: list[str] = []


class StoreConfig(_Section):
    # A DuckDB file; a directory for format: parquet; for format: fleet the shared data path
    # (a directory every replica mounts, or s3://bucket/prefix) of the DuckLake tables.
    path: str = "distill.duckdb"
    format: Literal["duckdb", "parquet", "fleet"] = "duckdb"
    # format: fleet: the env var holding the PostgreSQL DSN (catalog and small tables)
    postgres_dsn_env: str = "DISTILL_POSTGRES_DSN"
    spool_dir: str | None = None  # default: <path>.spool (fleet: distill-fleet.spool, local)
    flush_interval_s: float = Field(0.5, gt=0)
    segment_max_records: int = Field(20_000, gt=0)
    # /readyz: not ready once writing has failed (or one batch has run) this long. The spool
    # holds what was acknowledged meanwhile; raise it to ride out longer store outages.
    stall_after_s: float = Field(300.0, gt=0)

    @property
    def spool_path(self) -> Path:
        if self.spool_dir:
            return Path(self.spool_dir)
        # A fleet's data path is shared: each replica's spool must stay on its own disk.
        return Path("distill-fleet.spool") if self.format == "fleet" else Path(f"{self.path}.spool")


class RedactRule(_Section):
    pattern: str
    replace: str = "[REDACTED]"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        RedactPattern(value, "")  # RE2, linear time: raises ValueError saying what to change
        return value


class CaptureConfig(_Section):
    sample_rate: float = Field(1.0, ge=0, le=1)
    opt_out_header: str = "x-distill-no-log"
    redact: list[RedactRule] = []
    # The secret for pseudonyms of user/session ids a redaction rule matches (Redactor.identifier)
    pseudonym_key_env: str = "DISTILL_PSEUDONYM_KEY"
    max_body_bytes: int = Field(256 * 1024, gt=0)  # stored request/response bodies are capped


class UpstreamConfig(_Section):
    base_url: str
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)  # a whole non-streamed answer
    connect_timeout_s: float = Field(5.0, gt=0)
    # a stream's wait for its headers and between chunks; default timeout_s
    stream_idle_timeout_s: float | None = Field(None, gt=0)
    stream_deadline_s: float = Field(600.0, gt=0)  # a whole stream, from the request on
    # Add stream_options.include_usage to streams so they are logged with token counts; off
    # for a teacher that refuses unknown parameters (usage is then counted from the stream).
    stream_usage: bool = True
    forward_headers: list[str] = []  # request headers forwarded besides OpenAI's and tracing
    # A non-streamed answer (decoded) held in memory at most; larger is a 502. Streams and
    # passthrough downloads are relayed as they come and have no such bound.
    max_response_bytes: int = Field(256 * 1024 * 1024, gt=0)

    @property
    def stream_idle_s(self) -> float:
        return self.stream_idle_timeout_s or self.timeout_s

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL, e.g. http://127.0.0.1:9000/v1")
        return value.rstrip("/")


class TargetConfig(_Section):
    upstream: str
    model: str


class StudentConfig(_Section):
    name: str
    upstream: str
    model: str  # the adapter name vLLM serves
    weight: float = Field(0.0, ge=0, le=100)  # percent of the route's traffic


class SecondaryTeacherConfig(_Section):
    name: str  # the variant name its rows carry (not "teacher")
    upstream: str
    model: str
    sample_rate: float = Field(1.0, ge=0, le=1)  # share of requests also sent to it
    max_rps: float | None = Field(None, gt=0)  # a cap, so a second opinion never costs more


class ShadowConfig(_Section):
    sample_rate: float = Field(0.0, ge=0, le=1)
    student: str | None = None  # which student to mirror to; default: the rollout's candidate
    agreement: Mode = "normalized"  # how shadow answers are compared (gateway.answers)


class RouteConfig(_Section):
    name: str
    match: list[str] = Field(min_length=1)
    teacher: TargetConfig
    students: list[StudentConfig] = []
    shadow: ShadowConfig = ShadowConfig()
    default: bool = False  # serve requests whose model no route matches
    student_upstream: str | None = None  # rollouts may bring any adapter served here
    secondary_teachers: list[SecondaryTeacherConfig] = []  # second opinions, in background

    @model_validator(mode="after")
    def _weights(self) -> RouteConfig:
        taken = {s.name for s in self.students} | {"teacher"}
        clash = [t.name for t in self.secondary_teachers if t.name in taken]
        if clash:
            raise ValueError(f"secondary teacher names {clash} clash with teacher/student names")
        total = sum(s.weight for s in self.students)
        if total > 100:
            raise ValueError(f"student weights add up to {total}%, more than 100%")
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"student names must be unique, got {names}")
        return self


class RolloutConfig(_Section):
    tick_s: float = Field(1.0, gt=0)  # how often the controller checks the gates
    # Fleet store: a leader whose loop stops touching its lock session for this long loses
    # leadership (PostgreSQL ends the session); the loop touches it twice a second.
    leader_lease_s: float = Field(5.0, ge=1)
    shadow_rate: float = Field(0.5, gt=0, le=1)  # default share mirrored to a candidate
    gates: dict[str, float] = {}  # defaults for every rollout (see gateway/rollout/gates.py)


class PriceConfig(_Section):
    prompt_per_1k: float = Field(0.0, ge=0)
    completion_per_1k: float = Field(0.0, ge=0)


class DistillConfig(_Section):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    capture: CaptureConfig = CaptureConfig()
    upstreams: dict[str, UpstreamConfig] = Field(min_length=1)
    routes: list[RouteConfig] = []
    pricing: dict[str, PriceConfig] = {}  # by upstream model (teacher model or adapter)
    rollout: RolloutConfig = RolloutConfig()

    @model_validator(mode="after")
    def _references(self) -> DistillConfig:
        seen_routes: set[str] = set()
        seen_models: dict[str, str] = {}
        for route in self.routes:
            if route.name in seen_routes:
                raise ValueError(f"route name {route.name!r} is used twice")
            seen_routes.add(route.name)
            for model in route.match:
                if model in seen_models:
                    raise ValueError(
                        f"model {model!r} is matched by routes {seen_models[model]!r} "
                        f"and {route.name!r}; each model belongs to one route"
                    )
                seen_models[model] = route.name
            targets = [("teacher", route.teacher.upstream)]
            targets += [(f"students.{s.name}", s.upstream) for s in route.students]
            if route.student_upstream:
                targets.append(("student_upstream", route.student_upstream))
            targets += [
                (f"secondary_teachers.{t.name}", t.upstream) for t in route.secondary_teachers
            ]
            for where, upstream in targets:
                if upstream not in self.upstreams:
                    raise ValueError(
                        f"routes.{route.name}.{where}: upstream {upstream!r} is not defined "
                        f"under upstreams (defined: {', '.join(sorted(self.upstreams))})"
                    )
        defaults = [r.name for r in self.routes if r.default]
        if len(defaults) > 1:
            raise ValueError(f"only one route may be the default, got {defaults}")
        return self

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and where it is nested)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            index = int(key)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """`DISTILL__STORE__PATH=/data/x.duckdb` sets store.path (list items by index)."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if keys:
            try:
                _set_path(data, keys, yaml.safe_load(raw))
            except (IndexError, ValueError, TypeError) as exc:
                raise ConfigError(f"environment override {name}: no such config path") from exc
    return data


def parse_config(
    data: Mapping[str, Any], *, source: str = "config", environ: Mapping[str, str] | None = None
) -> DistillConfig:
    merged = apply_env_overrides(dict(data), environ if environ is not None else {})
    try:
        return DistillConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> DistillConfig:
    """Read and validate a `distill.yaml`; environment overrides apply on top."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; write one (see README, 'Config') or pass --config"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return parse_config(data, source=str(path), environ=os.environ if environ is None else environ)
