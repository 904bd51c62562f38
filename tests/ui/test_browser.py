"""The console in headless Chromium (Playwright) against a gateway with real logged traffic.

One gateway and one browser for the module. A team's path through it: log in, read the
overview, filter the traffic (a bad time is named beside its field), open an exchange by
keyboard, correct it and find the correction in the next `distill dataset build`; rank a
student's shadow pairs by label confusion; compare two eval runs; run two rollouts from the
console alone (the weak one rolled back by its gates, the good one promoted). Then every view
at 390 px wide: no sideways scroll, no serious or critical axe-core violation. Screenshots of
every view land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from distill_demo.teacher.server import TeacherSettings
from gateway.app import create_app
from gateway.cli import main as distill
from gateway.config import parse_config
from gateway.metrics import Metrics
from gateway.store.db import connect
from tests.fixtures.servers import (
    GatewayServer,
    ServerThread,
    TeacherServer,
    gateway_config_dict,
    start_teacher,
)
from tests.ui.helpers import TOKEN, XSS, auth, rollouts, send, send_text, weights

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
AXE = ROOT / "tests" / "ui" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SLOPPY, GOOD = "sloppy-student", "good-student"
ROUTE = "support-triage"
CAPTURE_LIMIT = 8192
VIEWS = {
    "overview": "#/overview",
    "traffic": "#/traffic",
    "compare": "#/compare",
    "evals": "#/evals",
    "data": "#/data",
    "rollouts": "#/rollouts",
}
# The list shows exactly one row, from this user (the previous list may still be on screen).
ONLY_USER = """user => {
  const rows = [...document.querySelectorAll('#traffic tbody tr')];
  return rows.length === 1 && rows[0].querySelector('td.user').textContent === user;
}"""
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def students() -> Iterator[dict[str, TeacherServer]]:
    # The weak student is wrong on a third of the tickets; the good one never.
    servers = {
        SLOPPY: start_teacher(TeacherSettings(error_rate=0.35, seed=SLOPPY, models=(SLOPPY,))),
        GOOD: start_teacher(TeacherSettings(error_rate=0.0, seed=GOOD, models=(GOOD,))),
    }
    yield servers
    for server in servers.values():
        server.thread.stop()


def eval_run(store: Path, out: Path, dataset: Path, adapter: str, wrong: set[int]) -> str:
    from trainer.evaluation.runs import record_run

    labels = ["billing", "account", "technical", "billing", "account", "technical"]
    records = [
        {
            "index": i,
            "prompt": f"ticket {i}: " + ("x " * 400 if i == 0 else "help"),
            "target": label,
            "prediction": "billing" if i in wrong and label != "billing" else label,
            "scores": {"agree": float(i not in wrong or label == "billing"), "token_f1": 1.0},
        }
        for i, label in enumerate(labels)
    ]
    out.mkdir(parents=True)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    agree = sum(r["scores"]["agree"] for r in records) / len(records)
    return record_run(
        store,
        kind="eval",
        metrics={"accuracy": agree, "agreement": agree, "p95_ms": 40.0 + len(wrong)},
        config={"out_dir": str(out), "dataset": str(dataset)},
        dataset_hash="c0ffee",
        base_model="tiny",
        adapter_path=f"/adapters/{adapter}",
    )


def register(store: Path, name: str, dataset: Path, card: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    lineage = {"dataset": {"dir": str(dataset), **card}}
    with connect(store) as conn:
        conn.execute(
            "INSERT INTO adapters (name, path, base_model, route, state, dataset_hash, lineage, "
            "metrics, created_at, updated_at) VALUES (?, ?, 'tiny', ?, 'candidate', ?, ?, '{}', "
            "?, ?)",
            [name, f"/adapters/{name}", ROUTE, card["content_hash"], json.dumps(lineage), now, now],
        )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    teacher_server: TeacherServer,
    students: dict[str, TeacherServer],
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("console")
    store = tmp / "console.duckdb"
    data = gateway_config_dict(teacher_server.base_url, store)
    data["capture"] = {"max_body_bytes": CAPTURE_LIMIT}
    data["upstreams"].update(
        {name: {"base_url": s.base_url, "timeout_s": 5} for name, s in students.items()}
    )
    data["routes"][0]["students"] = [
        {"name": name, "upstream": name, "model": name, "weight": 0} for name in students
    ]
    data["routes"][0]["shadow"] = {"agreement": "label"}
    data["pricing"].update(
        {name: {"prompt_per_1k": 0.0001, "completion_per_1k": 0.0002} for name in students}
    )
    data["rollout"] = {"tick_s": 0.1, "shadow_rate": 1.0}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
        config = parse_config(data, environ=dict(os.environ))
        app = create_app(config, metrics=Metrics())
        gw = GatewayServer(ServerThread(app).start(), app, config, store)
        try:
            seed(gw, tmp)
            yield gw
        finally:
            gw.stop()


def seed(gw: GatewayServer, tmp: Path) -> None:
    """Traffic, shadow pairs from an earlier rollout, two eval runs, a dataset and adapters."""
    send(gw, 12)
    send_text(gw, XSS, "mallory")
    send_text(gw, "please read this log: " + "lorem ipsum " * 2000, "big-body")
    started = httpx.post(
        f"{gw.url}/admin/rollouts",
        headers=auth(),
        json={"route": ROUTE, "adapter": SLOPPY, "steps": [100], "gates": {"min_requests": 10_000}},
    )
    assert started.status_code == 201, started.text
    send(gw, 16, start=100)  # each mirrored to the student: shadow pairs to rank
    assert httpx.post(f"{gw.url}/admin/rollouts/{ROUTE}/rollback", headers=auth()).is_success
    gw.flush()
    dataset = tmp / "dataset"
    dataset.mkdir()
    card = {
        "content_hash": "c0ffee1234567890",
        "route": ROUTE,
        "created_at": "2025-03-01T12:00:00+00:00",
        "files": {"train.jsonl": {"rows": 40}, "eval.jsonl": {"rows": 6}},
    }
    (dataset / "dataset.json").write_text(json.dumps(card))
    for name in (SLOPPY, GOOD):
        register(gw.store_path, name, dataset, card)
    eval_run(gw.store_path, tmp / "eval-sloppy", dataset, SLOPPY, wrong={1, 2, 4})
    eval_run(gw.store_path, tmp / "eval-good", dataset, GOOD, wrong={4})


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs the Debian packages chromium and chromium-driver (scripts/setup.sh)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any, server: GatewayServer) -> Iterator[Any]:
    """A logged-in tab; any script error on it fails the test."""
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: dialog.accept())
    tab.goto(f"{server.url}/ui/")
    tab.evaluate("token => sessionStorage.setItem('distill-admin-token', token)", TOKEN)
    yield tab
    tab.close()
    assert errors == [], errors


def shot(page: Any, name: str, *, screen: bool = False) -> None:
    """The whole page; with `screen`, also what the first screen shows."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if screen:
        page.screenshot(path=str(ARTIFACTS / f"{name}-screen.png"))


RENDERED = "hash => document.body.dataset.rendered === hash"


def visit(page: Any, server: GatewayServer, fragment: str, ready: str = "main h1") -> None:
    page.goto(f"{server.url}/ui/{fragment}")
    page.wait_for_function(RENDERED, arg=fragment)
    page.wait_for_selector(ready)


def submit(page: Any, button: str) -> None:
    """Submit a filter form and wait until the page shows the address it leads to."""
    before = page.evaluate("location.hash")
    page.click(button)
    page.wait_for_function(
        "h => location.hash !== h && document.body.dataset.rendered === location.hash", arg=before
    )


def test_login_refuses_a_wrong_token(browser: Any, server: GatewayServer) -> None:
    tab = browser.new_page()
    tab.goto(f"{server.url}/ui/")
    tab.fill("#token", "not-the-token")
    tab.click("#login button[type=submit]")
    tab.wait_for_selector("#login .error")
    assert "admin token" in tab.inner_text("#login .error")
    assert tab.locator("#traffic").count() == 0
    tab.fill("#token", TOKEN)
    tab.click("#login button[type=submit]")
    tab.wait_for_selector("#kpis")  # the console opens on the overview
    tab.close()


def test_overview_counts_live_traffic_and_what_students_saved(
    page: Any, server: GatewayServer
) -> None:
    visit(page, server, "#/overview?window=all", "#kpis")
    primaries = httpx.get(
        f"{server.url}/ui/api/traffic?kind=primary&limit=1", headers=auth()
    ).json()["total"]
    assert int(page.inner_text("#kpi-requests .kpi-value").replace(",", "")) == primaries
    assert page.inner_text("#kpi-cost .kpi-value").startswith("$")
    assert page.locator("#overview-charts svg.chart").count() == 6
    assert "shadow" not in page.inner_text("#overview tbody")  # no mirror rows listed
    shot(page, "overview")


def test_traffic_filters_search_and_inline_time_errors(page: Any, server: GatewayServer) -> None:
    visit(page, server, "#/traffic", "#traffic tbody tr")
    assert int(page.inner_text("#count").split(" of ")[1]) >= 13
    # Malicious text is shown as typed, never run.
    page.fill("#filters input[name=user]", "mallory")
    page.click("#filters button[type=submit]")
    page.wait_for_function(ONLY_USER, arg="mallory")
    assert XSS in page.inner_text("#traffic tbody")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#traffic tbody img").count() == 0
    # "text contains" searches what people wrote, not the JSON's keys.
    page.fill("#filters input[name=user]", "")
    page.fill("#filters input[name=text]", "assistant")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("text=No exchanges match these filters.")
    # A bad time is named beside its field; the page and the other filters stay.
    page.fill("#filters input[name=text]", "")
    page.fill("#filters input[name=since]", "yesterday")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#f-since-error:has-text('is not a time')")
    assert page.get_attribute("#f-since", "aria-invalid") is not None
    assert page.locator("#filters").count() == 1
    # Typed straight into the address, the server's message lands in the same place.
    visit(page, server, "#/traffic?until=31-01-2025", "#f-until-error:has-text('not a time')")
    assert page.locator("#traffic").count() == 1
    shot(page, "traffic-bad-time")


def test_open_by_keyboard_correct_and_dataset_build_uses_it(
    page: Any, server: GatewayServer, tmp_path: Path
) -> None:
    visit(page, server, "#/traffic?user=user-7&kind=primary", "#traffic tbody tr")
    page.wait_for_function(ONLY_USER, arg="user-7")
    page.focus("#traffic tbody tr a.open")
    page.keyboard.press("Enter")
    page.wait_for_selector("#correction")
    assert page.evaluate("window.scrollY") == 0
    original = page.inner_text("#answer")
    assert page.is_disabled("#save-correction")  # an unchanged answer is no correction
    gold = f"account (corrected from {original})"
    page.fill("#correction", gold)
    page.fill("#note", "the customer asks about a login")
    page.click("#save-correction")
    page.wait_for_selector("#saved:has-text('Saved (correction)')")
    assert "corrected" in page.inner_text("h1")
    assert "user-7" in page.inner_text("dl.meta") and "[object" not in page.inner_text("main")
    assert "the customer asks about a login" in page.inner_text("#history")
    shot(page, "exchange")
    request_id = page.inner_text("h1 code")

    result = CliRunner().invoke(
        distill,
        [
            "dataset", "build", "--store", str(server.store_path), "--route", ROUTE,
            "--out", str(tmp_path / "dataset"), "--no-exact-duplicate", "--no-near-duplicate",
            "--min-rows", "1", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.output[result.output.index("{") :])
    assert card["annotations"]["corrections_applied"] >= 1
    targets = [
        json.loads(line)["messages"][-1]["content"]
        for split in ("train.jsonl", "eval.jsonl")
        for line in (tmp_path / "dataset" / split).read_text().splitlines()
    ]
    assert gold in targets and request_id.startswith("req_")


def test_shadow_rows_and_truncated_bodies(page: Any, server: GatewayServer) -> None:
    shadow = httpx.get(f"{server.url}/ui/api/traffic?kind=shadow&limit=1", headers=auth())
    row = shadow.json()["rows"][0]
    visit(page, server, f"#/exchange/{row['id']}", "#no-correction")
    assert "shadow row" in page.inner_text("#no-correction")
    assert page.locator("#correction").count() == 0
    page.click("#to-primary")
    page.wait_for_selector("#correction")
    refused = httpx.post(
        f"{server.url}/admin/annotations",
        headers=auth(),
        json={"request_id": row["id"], "kind": "correction", "answer": "billing"},
    )
    assert refused.status_code == 400 and "shadow row" in refused.text

    big = httpx.get(f"{server.url}/ui/api/traffic?user=big-body", headers=auth()).json()
    visit(page, server, f"#/exchange/{big['rows'][0]['id']}", ".truncated")
    assert "over the gateway's capture limit" in page.inner_text(".truncated")
    assert page.evaluate("document.documentElement.scrollHeight") < 6000
    shot(page, "exchange-truncated")


def test_compare_ranks_label_confusions_with_word_diffs(page: Any, server: GatewayServer) -> None:
    visit(page, server, f"#/compare?student={SLOPPY}", "#pairs tbody tr")
    assert "labels" in page.inner_text("#measure")
    top = page.locator("#confusions tbody tr").first
    counts = [int(c) for c in page.locator("#confusions tbody td.num").all_inner_texts()]
    assert counts and counts == sorted(counts, reverse=True)
    first = page.locator("#pairs tbody tr").first
    assert top.locator("td").first.inner_text() in first.inner_text()  # commonest confusion first
    diff = first.locator("pre.diff").inner_text()
    removed, added = (
        first.locator("pre.diff del").inner_text(),
        first.locator("pre.diff ins").inner_text(),
    )
    assert f"{removed} {added}" in diff  # never run together ("technicalbilling")
    scores = [float(t.split()[0]) for t in page.locator("#pairs tbody td.num").all_inner_texts()]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True)
    shot(page, "compare")
    # One confusion at a time: every pair listed is that confusion.
    teacher_says = top.locator("td").first.inner_text()
    student_says = top.locator("td").nth(1).inner_text()
    submit(page, "#confusions tbody tr:first-child a.only-confusion")
    why = page.locator("#pairs tbody .why").all_inner_texts()
    assert len(why) == counts[0]
    assert all(w.startswith(f"{teacher_says} → {student_says}") for w in why)


def test_eval_runs_named_by_adapter_and_compared(page: Any, server: GatewayServer) -> None:
    runs = {
        r["adapter"]: r["id"]
        for r in httpx.get(f"{server.url}/ui/api/evals", headers=auth()).json()["runs"]
    }
    visit(page, server, "#/evals", "#eval-pick")
    assert page.locator(f"#eval-runs th:has-text('{GOOD}')").count() == 1
    page.select_option("#f-a", runs[SLOPPY])
    page.select_option("#f-b", runs[GOOD])
    submit(page, "#eval-pick button[type=submit]")
    assert f"{SLOPPY} vs {GOOD}" in page.inner_text("h1")
    accuracy = page.locator("#eval-deltas tr", has_text="accuracy")
    assert "+0.333" in accuracy.inner_text() and "better" in accuracy.inner_text()
    assert "2 fixed" in page.inner_text("#eval-compare-summary")
    page.check("#f-changed")
    submit(page, "#eval-pick button[type=submit]")
    assert page.locator("#eval-compare tbody tr").count() == 2
    assert page.locator("#eval-compare tbody tr", has_text="fixed").count() == 2
    shot(page, "evals-compare")
    visit(page, server, "#/data", "#datasets .dataset")
    assert "train 40" in page.inner_text("#datasets") and GOOD in page.inner_text("#datasets")


def test_two_rollouts_run_from_the_console(page: Any, server: GatewayServer) -> None:
    visit(page, server, "#/rollouts", "#start-rollout")

    def start(adapter: str, min_agreement: str) -> None:
        page.select_option("#start-adapter", adapter)
        page.fill("#start-steps", "50, 100")
        page.fill("#start-min_agreement", min_agreement)
        page.fill("#start-min_agreement_pairs", "8")
        page.fill("#start-min_requests", "8")
        page.fill("#start-min_seconds", "0")
        page.click("#start-button")
        page.wait_for_selector(f".rollout.current[data-adapter='{adapter}'][data-state=shadow]")

    # The weak student: pause and resume by hand, then its gate rolls it back by itself.
    start(SLOPPY, "0.9")
    current = f".rollout.current[data-adapter='{SLOPPY}']"
    page.click(f"{current} button[data-action=pause]")
    page.wait_for_selector(f"{current}[data-state=paused]")
    page.click(f"{current} button[data-action=resume]")
    page.wait_for_selector(f"{current}[data-state=shadow] table.gates")
    assert "shadow (0% of traffic)" in page.inner_text(f"{current} h3")
    send(server, 16, start=200)
    # No reload: the page refreshes itself.
    page.wait_for_selector(f"{current}[data-state=rolled_back]", timeout=30_000)
    page.wait_for_selector(f"{current} table.decisions td:has-text('rollback')")
    decisions = page.inner_text(f"{current} table.decisions")
    assert "shadow (0% of traffic) → 0% of traffic" in decisions and "agreement" in decisions
    assert "-1 →" not in decisions and "→ -1" not in decisions
    shot(page, "rollouts-rolled-back")

    # The good student: shadow, then 50 % of traffic by its gates, then promoted by hand.
    start(GOOD, "0.8")
    current = f".rollout.current[data-adapter='{GOOD}']"
    send(server, 10, start=300)
    page.wait_for_selector(f"{current}[data-state=canary]", timeout=30_000)
    assert "50% of traffic (step 1 of 2)" in page.inner_text(f"{current} h3")
    assert weights(server).get(GOOD) == 50
    gates = page.locator(f"{current} table.gates")
    gates.wait_for()
    assert "agreement with teacher" in gates.inner_text()
    assert page.locator(f"{current} svg.chart").count() >= 2
    shot(page, "rollouts-canary")
    page.click(f"{current} button[data-action=promote]")
    page.wait_for_selector(f"{current}[data-state=promoted]")
    assert weights(server).get(GOOD) == 100
    states = {r["adapter"]: r["state"] for r in rollouts(server)["history"][:2]}
    assert states == {GOOD: "promoted", SLOPPY: "rolled_back"}
    shot(page, "rollouts-promoted")


AXE_SERIOUS = (
    "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    ".filter(v => ['serious', 'critical'].includes(v.impact))"
    ".map(v => ({id: v.id, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
)


@pytest.mark.parametrize("width", [390, 1440])
def test_every_view_fits_and_passes_axe(browser: Any, server: GatewayServer, width: int) -> None:
    """At 390 px (and 360 px): no sideways scroll, no serious axe violation; at 1440 px: no
    sideways scroll. A screenshot of each view at each width."""
    if not AXE.is_file():
        pytest.skip("needs axe-core: npm ci --prefix tests/ui/axe (scripts/setup.sh)")
    tab = browser.new_page()
    tab.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
    tab.set_default_timeout(15_000)
    problems: dict[str, Any] = {}
    # The login form first (no token yet), then every view.
    tab.goto(f"{server.url}/ui/")
    tab.wait_for_selector("#login")
    tab.add_script_tag(path=str(AXE))
    if found := tab.evaluate(AXE_SERIOUS):
        problems["login: axe"] = found
    shot(tab, f"login-{width}")
    tab.evaluate("token => sessionStorage.setItem('distill-admin-token', token)", TOKEN)
    some = httpx.get(f"{server.url}/ui/api/traffic?kind=primary&limit=1", headers=auth())
    views = {**VIEWS, "exchange": f"#/exchange/{some.json()['rows'][0]['id']}"}
    runs = httpx.get(f"{server.url}/ui/api/evals", headers=auth()).json()["runs"]
    views["eval-run"] = f"#/eval/{runs[0]['id']}"
    for name, fragment in views.items():
        tab.goto(f"{server.url}/ui/{fragment}")
        tab.wait_for_function(RENDERED, arg=fragment)
        narrowest = (360, width) if width < 800 else (width,)
        for w in narrowest:  # the layout holds down to 360 px
            tab.set_viewport_size({"width": w, "height": 844})
            if not tab.evaluate(NO_SIDEWAYS_SCROLL):
                problems[f"{name} at {w} px: scrolls sideways"] = tab.evaluate(
                    "document.documentElement.scrollWidth"
                )
        tab.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
        if width < 800:  # axe once per view, on the phone layout (colours are the same)
            tab.add_script_tag(path=str(AXE))
            if found := tab.evaluate(AXE_SERIOUS):
                problems[f"{name}: axe"] = found
        shot(tab, f"{name}-{width}", screen=True)
    tab.close()
    assert problems == {}
