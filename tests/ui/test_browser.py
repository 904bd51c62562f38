"""The console in headless Chromium (Playwright) against a gateway with real logged traffic.

A new user's path: log in, filter the traffic, open an exchange, correct it and find the
correction in the next `distill dataset build`; find a student's worst shadow pairs; press
roll back and watch the weight drop. Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from distill_demo.teacher.server import TeacherSettings
from gateway.cli import main as distill
from tests.fixtures.servers import GatewayFactory, GatewayServer, TeacherServer, start_teacher
from tests.ui.helpers import TOKEN, XSS, auth, drive_to_canary, send, send_text, weights

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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
STUDENT = "sloppy-student"
# The list shows exactly one row, from this user (the previous list may still be on screen).
ONLY_USER = """user => {
  const rows = [...document.querySelectorAll('#traffic tbody tr')];
  return rows.length === 1 && rows[0].children[7].textContent === user;
}"""


@pytest.fixture
def student() -> Iterator[TeacherServer]:
    # Wrong on a third of the tickets: enough disagreement to look at, enough to pass 0.5.
    server = start_teacher(TeacherSettings(error_rate=0.35, seed=STUDENT, models=(STUDENT,)))
    yield server
    server.thread.stop()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs the Debian packages chromium and chromium-driver (scripts/setup.sh)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        context.close()
        assert errors == [], errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def server(
    make_gateway: GatewayFactory, student: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> GatewayServer:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["students"] = {"base_url": student.base_url, "timeout_s": 5}
        cfg["routes"][0]["student_upstream"] = "students"
        cfg["rollout"] = {"tick_s": 0.1, "shadow_rate": 1.0}

    gw = make_gateway(edit)
    send(gw, 12)
    send_text(gw, XSS, "mallory")
    started = httpx.post(
        f"{gw.url}/admin/rollouts",
        headers=auth(),
        json={
            "route": "support-triage",
            "adapter": STUDENT,
            "steps": [50, 100],
            "gates": {
                "min_requests": 8,
                "min_seconds": 0,
                "min_agreement_pairs": 8,
                "min_agreement": 0.3,
            },
        },
    )
    assert started.status_code == 201, started.text
    drive_to_canary(gw)
    gw.flush()
    return gw


def test_review_console_in_chromium(
    server: GatewayServer, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    # Wrong token: the login form says so and no data is shown.
    page.goto(f"{server.url}/ui/")
    page.fill("#token", "not-the-token")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login .error")
    assert "admin token" in page.inner_text("#login .error")
    assert page.locator("#traffic").count() == 0

    page.fill("#token", TOKEN)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#traffic tbody tr")
    total = int(page.inner_text("#count").split(" of ")[1])
    assert total >= 13
    shot(page, "traffic")

    # Malicious text is shown as typed, never run.
    page.fill("#filters input[name=user]", "mallory")
    page.click("#filters button[type=submit]")
    page.wait_for_function(ONLY_USER, arg="mallory")
    assert XSS in page.inner_text("#traffic tbody")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#traffic tbody img").count() == 0

    # Filter to one user's exchange, open it, correct the teacher's answer.
    page.fill("#filters input[name=user]", "user-7")
    page.select_option("#filters select[name=kind]", "primary")
    page.click("#filters button[type=submit]")
    page.wait_for_function(ONLY_USER, arg="user-7")
    page.click("#traffic tbody tr")
    page.wait_for_selector("#correction")
    original = page.inner_text("#answer")
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

    # The next dataset build counts it and teaches the gold answer.
    out = tmp_path / "dataset"
    result = CliRunner().invoke(
        distill,
        [
            "dataset", "build", "--store", str(server.store_path), "--route", "support-triage",
            "--out", str(out), "--no-exact-duplicate", "--no-near-duplicate", "--min-rows", "1",
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.output[result.output.index("{") :])
    assert card["annotations"]["corrections"] == 1
    assert card["annotations"]["corrections_applied"] == 1
    targets = [
        json.loads(line)["messages"][-1]["content"]
        for split in ("train.jsonl", "eval.jsonl")
        for line in (out / split).read_text().splitlines()
    ]
    assert gold in targets
    assert request_id.startswith("req_")

    # The data page counts the correction in force.
    page.goto(f"{server.url}/ui/#/data")
    page.wait_for_selector("#annotation-counts")
    assert "corrected answers1" in page.inner_text("#annotation-counts").replace("\t", "")
    shot(page, "data")

    # From the rollout to the student's failing examples, worst first.
    page.goto(f"{server.url}/ui/#/rollouts")
    rollout = page.locator(f".rollout[data-adapter='{STUDENT}']").first
    rollout.wait_for()
    assert rollout.get_attribute("data-state") == "canary"
    assert weights(server) == {STUDENT: 50}
    shot(page, "rollouts-canary")
    rollout.locator("a.failing").click()
    page.wait_for_selector("#pairs tbody tr")
    first = float(page.inner_text("#pairs tbody tr:first-child td:first-child").split()[0])
    last = float(page.inner_text("#pairs tbody tr:last-child td:first-child").split()[0])
    assert first > 0 and first >= last
    assert "exact agreement" in page.inner_text("#pair-summary")
    shot(page, "compare")

    # Roll back from the page: the student's weight drops to 0.
    page.goto(f"{server.url}/ui/#/rollouts")
    page.click(f".rollout[data-adapter='{STUDENT}'] button[data-action=rollback]")
    page.wait_for_selector(f".rollout[data-adapter='{STUDENT}'][data-state=rolled_back]")
    assert weights(server) == {STUDENT: 0}
    assert "rolled back" in page.inner_text(".rollout [data-role=state]")
    assert "sloppy-student 0%" in page.inner_text(".weights-text")
    assert "0% of traffic" in page.inner_text(f".rollout[data-adapter='{STUDENT}'] h2")
    shot(page, "rollouts-rolled-back")
