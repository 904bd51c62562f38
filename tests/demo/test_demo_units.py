"""The demo's pure parts and its process handling, without vLLM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from rich.console import Console

from distill_demo import services
from distill_demo.run import DemoError, DemoRun, shuffled_copy
from distill_demo.settings import ROUTE, DemoSettings, gateway_config, live_pause_s, train_steps
from distill_demo.summary import (
    costs_by_variant,
    decision_lines,
    filter_counts,
    outcome_problems,
)
from distill_demo.teacher.task import classify
from distill_demo.traffic import BAD_BODY, BAD_MODEL, CHAT, STREAM, plan_requests
from gateway.cli import main as distill
from gateway.config import parse_config
from tests.fixtures.servers import TeacherServer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 50}, "--requests 50"),
        ({"vllm_url": "http://127.0.0.1:1/v1"}, "--vllm-url needs --base-model"),
        ({"vllm_url": "localhost:8000", "base_model": Path("m")}, "not an http(s) URL"),
        ({"users": 0}, "users=0"),
        ({"stream_share": 1.5}, "stream_share=1.5"),
        ({"bad_requests": -1}, "bad_requests=-1"),
        ({"steps": (5, 50)}, "must end at 100"),
        ({"student": "gpt2"}, "choose one of smollm2, tiny"),
        ({"good_steps": 0}, "good_steps=0"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DemoSettings(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "preset", "steps"),
    [
        ({}, "pretrained", (None, 12)),  # SmolLM2: the preset's own length, a short weak run
        ({}, "random-init", (300, 40)),  # the tiny stand-in learns from scratch
        ({"good_steps": 80, "weak_steps": 5}, "pretrained", (80, 5)),
        ({"weak_steps": 30}, "random-init", (300, 30)),
    ],
)
def test_training_steps_follow_the_student(
    kwargs: dict[str, Any], preset: str, steps: tuple[int | None, int]
) -> None:
    assert train_steps(DemoSettings(**kwargs), preset) == steps


def test_plan_mixes_users_streams_bad_requests_and_feedback() -> None:
    specs = plan_requests(
        400, seed=3, users=20, stream_share=0.25, feedback_share=0.1, bad_requests=6
    )
    kinds = Counter(s.kind for s in specs)
    assert kinds[BAD_MODEL] == 3 and kinds[BAD_BODY] == 3
    assert 60 < kinds[STREAM] < 140 and kinds[CHAT] > 200
    assert len({s.user for s in specs}) == 20
    rated = [s for s in specs if s.feedback is not None]
    assert all(s.kind in (CHAT, STREAM) for s in rated)
    assert {s.feedback for s in rated} == {0.0, 1.0}
    assert all(classify(s.ticket) == s.label for s in specs)
    # Reproducible from the seed, different for another seed.
    again = plan_requests(
        400, seed=3, users=20, stream_share=0.25, feedback_share=0.1, bad_requests=6
    )
    assert again == specs
    other = plan_requests(
        400, seed=4, users=20, stream_share=0.25, feedback_share=0.1, bad_requests=6
    )
    assert other != specs


def test_gateway_config_is_valid_and_prices_teacher_and_students(tmp_path: Path) -> None:
    data = gateway_config(
        port=8123,
        teacher_url="http://127.0.0.1:9001/v1",
        vllm_url="http://127.0.0.1:9002/v1",
        store_path=tmp_path / "s.duckdb",
        adapters=["good", "weak"],
        tick_s=0.2,
    )
    config = parse_config(data, environ={})
    route = config.route(ROUTE)
    assert route is not None and route.student_upstream == "vllm"
    assert route.shadow.agreement == "label" and route.match == ["gpt-4o"]
    assert set(config.pricing) == {"gpt-4o", "good", "weak"}
    assert (
        config.pricing["gpt-4o"].completion_per_1k > 10 * config.pricing["good"].completion_per_1k
    )
    assert config.rollout.tick_s == 0.2


METRICS = """\
# TYPE distill_requests_total counter
distill_requests_total{route="support-triage",variant="teacher",status="200"} 800.0
distill_requests_total{route="support-triage",variant="teacher",status="502"} 0.0
distill_requests_total{route="support-triage",variant="good",status="200"} 200.0
distill_requests_total{route="other",variant="teacher",status="200"} 5.0
# TYPE distill_cost_usd_total counter
distill_cost_usd_total{route="support-triage",variant="teacher"} 0.16
distill_cost_usd_total{route="support-triage",variant="good"} 0.0004
distill_cost_usd_total{route="other",variant="teacher"} 9.0
"""


def test_cost_per_1k_requests_from_metrics() -> None:
    costs = costs_by_variant(METRICS, "support-triage")
    assert set(costs) == {"teacher", "good"}
    assert costs["teacher"].per_1k == pytest.approx(0.2)
    assert costs["good"].per_1k == pytest.approx(0.002)


def test_decision_lines_and_filter_counts() -> None:
    rollout = {
        "steps": [5.0, 100.0],
        "decisions": [
            {"decision": "start", "to_step": -1, "reason": "shadow 100%", "numbers": {}},
            {
                "decision": "rollback",
                "to_step": -1,
                "reason": "agreement 0.4 < 0.9",
                "numbers": {"student": {"requests": 30, "agreement": 0.4, "agreement_pairs": 30}},
            },
        ],
    }
    assert decision_lines(rollout) == [
        "start → shadow: shadow 100%",
        "rollback → 0%: agreement 0.4 < 0.9 [30 req, agreement 0.40/30]",
    ]
    card = {"filters": {"failed": {"removed": 0}, "exact_duplicate": {"removed": 4}}}
    assert filter_counts(card) == [("exact_duplicate", 4)]


CHECK_ALL = {"requests": 20, "on_student": 20}


@pytest.mark.parametrize(
    ("states", "check", "expected"),
    [
        ({"w": "rolled_back", "g": "promoted"}, CHECK_ALL, []),
        ({"w": "promoted", "g": "promoted"}, CHECK_ALL, ["weak adapter w was not rolled back"]),
        ({"w": "rolled_back", "g": "rolled_back"}, CHECK_ALL, ["good adapter g was not promoted"]),
        ({"w": "rolled_back"}, None, ["good adapter g was not promoted (state None"]),
        (
            {"w": "rolled_back", "g": "promoted"},
            {"requests": 20, "on_student": 19},
            ["only 19/20 new users"],
        ),
    ],
)
def test_outcome_problems(
    states: dict[str, str], check: dict[str, int] | None, expected: list[str]
) -> None:
    results: dict[str, Any] = {"rollouts": states, "eval_good": {"accuracy": 0.87}}
    if check:
        results["final_check"] = check
    problems = outcome_problems(results, "g", "w")
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


def test_shuffled_copy_keeps_prompts_and_label_counts(tmp_path: Path) -> None:
    src = tmp_path / "ds"
    src.mkdir()
    rows = [
        {"messages": [{"role": "user", "content": f"t{i}"}, {"role": "assistant", "content": y}]}
        for i, y in enumerate(["billing"] * 10 + ["account"] * 10)
    ]
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "eval.jsonl").write_text("{}\n")
    (src / "dataset.json").write_text(json.dumps({"content_hash": "abc"}))
    out = shuffled_copy(src, tmp_path / "shuffled", seed=0)
    got = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert [g["messages"][0] for g in got] == [r["messages"][0] for r in rows]
    answers = [g["messages"][-1]["content"] for g in got]
    assert Counter(answers) == Counter(r["messages"][-1]["content"] for r in rows)
    assert answers != [r["messages"][-1]["content"] for r in rows]
    assert json.loads((out / "dataset.json").read_text())["content_hash"] != "abc"


def test_rerun_clears_the_previous_run_but_keeps_the_model(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    (work / "model" / "tiny").mkdir(parents=True)
    (work / "model" / "tiny" / "config.json").write_text("{}")
    for d in ("dataset", "adapters/x", "logs"):
        (work / d).mkdir(parents=True)
    (work / "distill.duckdb").write_text("old")
    (work / "summary.json").write_text("{}")
    run = DemoRun(DemoSettings(workdir=work), Console(quiet=True))
    run.prepare_workdir()
    assert (work / "model" / "tiny" / "config.json").exists()
    assert not (work / "distill.duckdb").exists() and not (work / "adapters").exists()
    assert not (work / "summary.json").exists() and (work / "logs").is_dir()


def test_kept_services_block_a_rerun_until_stopped(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    work.mkdir()
    sleeper = services.start_service(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        url="http://127.0.0.1:1",
        health_path="/",
        log_path=work / "sleeper.log",
    )
    try:
        services.write_services(work, {"sleeper": {"pgid": sleeper.process.pid}})
        run = DemoRun(DemoSettings(workdir=work), Console(quiet=True))
        with pytest.raises(DemoError, match="distill demo --stop --workdir"):
            run.prepare_workdir()
        assert services.stop_recorded(work) == ["sleeper"]
        assert sleeper.process.wait(timeout=10) is not None
        assert not (work / services.SERVICES_FILE).exists()
        assert services.running_recorded(work) == []
    finally:
        sleeper.stop()


def test_peak_memory_counts_children() -> None:
    with services.PeakMemory(interval_s=0.05) as memory:
        alone = memory.sample()
        child = subprocess.Popen(
            [sys.executable, "-c", "x = bytearray(200 * 2**20); import time; time.sleep(2)"]
        )
        try:
            import time

            deadline = time.monotonic() + 10
            while memory.peak_bytes < alone + 150 * 2**20 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            child.kill()
            child.wait()
    assert memory.peak_bytes >= alone + 150 * 2**20


def test_unreachable_vllm_stops_at_stage_one_with_what_to_do(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from trainer.serving.vllm_process import free_port

    work = tmp_path / "demo"
    result = CliRunner().invoke(
        distill,
        [
            "demo",
            "--workdir",
            str(work),
            "--vllm-url",
            f"http://127.0.0.1:{free_port()}/v1",
            "--base-model",
            str(tiny_model_dir),
        ],
    )
    assert result.exit_code == 1
    assert "stage 1/5" in result.output and "leave out --vllm-url" in result.output
    assert not (work / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_process_the_demo_started(
    tmp_path: Path, tiny_model_dir: Path, teacher_server: TeacherServer, sig: signal.Signals
) -> None:
    # Nothing asks vLLM for more than its model list before stage 4, so the demo teacher
    # (which lists models too) stands in for it here: the test is about stopping children.
    work = tmp_path / "demo"
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", "demo", "--workdir", str(work)),
            *("--vllm-url", teacher_server.base_url, "--base-model", str(tiny_model_dir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        children: list[psutil.Process] = []
        for line in demo.stdout:
            if "Stage 2/5" in line:
                children = psutil.Process(demo.pid).children(recursive=True)
                break
        assert len(children) >= 2, "teacher and gateway should be running in stage 2"
        demo.send_signal(sig)
        rest = demo.communicate(timeout=60)[0]
    finally:
        demo.kill()
    assert demo.returncode == 130, rest
    assert "interrupted" in rest
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert not (work / "summary.json").exists()


def test_console_rollouts_wait_for_the_person_running_them(
    make_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rollouts console: the demo waits while someone runs both rollouts by hand."""
    import threading

    import httpx

    from distill_demo.teacher.server import TeacherSettings
    from tests.fixtures.servers import start_teacher

    (tmp_path / "demo").mkdir()
    run = DemoRun(DemoSettings(workdir=tmp_path / "demo", rollouts="console"), Console(quiet=True))
    weak, good = run.weak_name, run.good_name
    student = start_teacher(TeacherSettings(models=(weak, good)))
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", run.admin_token)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"admin_token_env": "DISTILL_ADMIN_TOKEN"}
        cfg["upstreams"]["students"] = {"base_url": student.base_url, "timeout_s": 5}
        cfg["routes"][0]["name"] = ROUTE
        cfg["routes"][0]["student_upstream"] = "students"

    gw = make_gateway(edit)
    run.gateway_url = gw.url

    def person() -> None:  # what the review console's buttons send
        for adapter, action in ((weak, "rollback"), (good, "promote")):
            url = f"{gw.url}/admin/rollouts"
            assert httpx.post(url, headers=run.admin(), json={"route": ROUTE, "adapter": adapter})
            assert httpx.post(f"{url}/{ROUTE}/{action}", headers=run.admin()).is_success

    try:
        clicks = threading.Timer(0.5, person)
        clicks.start()
        with httpx.Client(timeout=10) as http:
            states = run._console_rollouts(http)
        clicks.join()
    finally:
        student.thread.stop()
    assert states == {weak: "rolled_back", good: "promoted"}
    assert (tmp_path / "demo" / "admin-token").read_text().strip() == run.admin_token


@pytest.mark.parametrize(
    ("preset", "rollouts", "pause"),
    [
        ("random-init", "demo", 0.0),  # the tiny student's rollouts end in seconds
        ("pretrained", "demo", 2.0),  # SmolLM2 on CPU answers ~2 req/s through vLLM
        ("random-init", "console", 2.0),  # a person takes minutes: paced whatever the student
        ("pretrained", "console", 2.0),
        ("some-new-preset", "demo", 2.0),
    ],
)
def test_background_traffic_pace(preset: str, rollouts: str, pause: float) -> None:
    assert live_pause_s(preset, rollouts) == pause
