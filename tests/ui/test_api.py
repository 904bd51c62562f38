"""The console's HTTP API and `distill annotate` against a real gateway with logged traffic."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import main as distill
from tests.fixtures.servers import GatewayFactory, GatewayServer
from tests.ui.helpers import TOKEN, XSS, auth, send, send_text

READS = [
    "/ui/api/overview",
    "/ui/api/traffic",
    "/ui/api/pairs",
    "/ui/api/data",
    "/ui/api/rollouts",
    "/admin/annotations?request_id=x",
]


@pytest.fixture
def server(make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch) -> GatewayServer:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    gw = make_gateway()
    send(gw, 3)
    send_text(gw, XSS, "mallory")
    gw.flush()
    return gw


@pytest.mark.parametrize("headers", [{}, auth("wrong-token"), {"Authorization": TOKEN}])
def test_no_or_wrong_token_is_401_without_data(
    server: GatewayServer, headers: dict[str, str]
) -> None:
    ids = [
        r["id"] for r in httpx.get(f"{server.url}/ui/api/traffic", headers=auth()).json()["rows"]
    ]
    assert len(ids) == 4
    for path in [*READS, f"/ui/api/exchanges/{ids[0]}"]:
        response = httpx.get(f"{server.url}{path}", headers=headers)
        assert response.status_code == 401, path
        assert set(response.json()) == {"error"}
        assert ids[0] not in response.text and "ticket" not in response.text.lower()
    posted = httpx.post(
        f"{server.url}/admin/annotations",
        headers=headers,
        json={"request_id": ids[0], "kind": "exclude"},
    )
    assert posted.status_code == 401
    listed = httpx.get(
        f"{server.url}/admin/annotations", params={"request_id": ids[0]}, headers=auth()
    )
    assert listed.json()["annotations"] == []


def test_page_shell_has_no_data_and_no_cdn(server: GatewayServer) -> None:
    page = httpx.get(f"{server.url}/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("app.js", "app.css"):
        assert httpx.get(f"{server.url}/ui/static/{asset}").status_code == 200
    assert httpx.get(f"{server.url}/ui/static/../app.py").status_code == 404
    combined = page.text + httpx.get(f"{server.url}/ui/static/app.js").text
    assert "https://" not in combined and "http://" not in combined.replace(SVG_NS, "")
    assert "user-0" not in page.text


SVG_NS = "http://www.w3.org/2000/svg"


def test_annotations_api_round_trip_and_bad_input(server: GatewayServer) -> None:
    rid = httpx.get(
        f"{server.url}/ui/api/traffic", params={"user": "user-1"}, headers=auth()
    ).json()["rows"][0]["id"]
    url = f"{server.url}/admin/annotations"
    made = httpx.post(
        url,
        headers={**auth(), "X-Distill-Author": "dana"},
        json={"request_id": rid, "kind": "correction", "answer": "account", "note": "pw reset"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["author"] == "dana" and made.json()["answer"] == "account"
    excluded = httpx.post(url, headers=auth(), json={"request_id": rid, "kind": "exclude"})
    assert excluded.status_code == 201 and excluded.json()["author"] == "admin"
    listed = httpx.get(url, params={"request_id": rid}, headers=auth()).json()["annotations"]
    assert [(a["kind"], a["author"]) for a in listed] == [
        ("exclude", "admin"),
        ("correction", "dana"),
    ]
    detail = httpx.get(f"{server.url}/ui/api/exchanges/{rid}", headers=auth()).json()
    assert [a["kind"] for a in detail["annotations"]] == ["exclude", "correction"]
    for body, status, words in [
        ({"request_id": rid, "kind": "delete"}, 400, "kind='delete'"),
        ({"request_id": rid, "kind": "correction"}, 400, "gold answer"),
        ({"request_id": rid, "kind": "label", "label": "x", "extra": 1}, 400, "extra"),
        ({"request_id": "req_ghost", "kind": "exclude"}, 404, "no logged exchange"),
    ]:
        response = httpx.post(url, headers=auth(), json=body)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]["message"] + str(response.json()["error"]["param"])
    assert (
        len(httpx.get(url, params={"request_id": rid}, headers=auth()).json()["annotations"]) == 2
    )


def test_bad_query_parameters_are_400(server: GatewayServer) -> None:
    for path, words in [
        ("/ui/api/traffic?kind=teacher", "kind='teacher'"),
        ("/ui/api/traffic?limit=100000", "limit=100000"),
        ("/ui/api/traffic?since=yesterday", "since='yesterday' is not a time"),
        ("/ui/api/traffic?until=2025-13-01", "until='2025-13-01' is not a time"),
        ("/ui/api/pairs?order=best", "order='best'"),
        ("/ui/api/summary?window=2h", "window='2h': use one of 1h, 24h, 7d, all"),
    ]:
        response = httpx.get(f"{server.url}{path}", headers=auth())
        assert response.status_code == 400, path
        assert words in str(response.json()["error"])
    missing = httpx.get(f"{server.url}/ui/api/exchanges/req_ghost", headers=auth())
    assert missing.status_code == 404
    for path in ("/ui/api/evals/compare?a=x&b=y", "/ui/api/runs/nope/examples"):
        assert httpx.get(f"{server.url}{path}", headers=auth()).status_code == 404, path


def test_malicious_prompt_comes_back_as_data(server: GatewayServer) -> None:
    rows = httpx.get(
        f"{server.url}/ui/api/traffic", params={"user": "mallory"}, headers=auth()
    ).json()["rows"]
    assert rows[0]["prompt"] == XSS
    assert (
        httpx.get(f"{server.url}/ui/api/traffic", headers=auth())
        .headers["content-type"]
        .startswith("application/json")
    )


def test_annotate_cli_writes_the_same_rows(server: GatewayServer, tmp_path: Path) -> None:
    store = str(server.store_path)
    rid = httpx.get(
        f"{server.url}/ui/api/traffic", params={"user": "user-2"}, headers=auth()
    ).json()["rows"][0]["id"]
    runner = CliRunner()
    ok = runner.invoke(
        distill,
        [
            "annotate",
            "correct",
            rid,
            "--answer",
            "billing",
            "--store",
            store,
            "--author",
            "cli-kim",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert rid in ok.output and "cli-kim" in ok.output
    label = runner.invoke(distill, ["annotate", "label", rid, "--label", "vip", "--store", store])
    assert label.exit_code == 0, label.output
    listed = httpx.get(
        f"{server.url}/admin/annotations", params={"request_id": rid}, headers=auth()
    ).json()["annotations"]
    assert {(a["kind"], a["answer"], a["label"]) for a in listed} == {
        ("correction", "billing", None),
        ("label", None, "vip"),
    }
    for args, code, words in [
        (["annotate", "correct", rid, "--store", store], 2, "needs the gold answer"),
        (["annotate", "exclude", "req_ghost", "--store", store], 1, "no logged exchange"),
        (
            ["annotate", "exclude", rid, "--store", str(tmp_path / "none.duckdb")],
            2,
            "does not exist",
        ),
        (["annotate", "hide", rid, "--store", store], 2, "hide"),
    ]:
        result = runner.invoke(distill, args)
        assert result.exit_code == code, result.output
        assert words in result.output
    assert not (tmp_path / "none.duckdb").exists()


def test_eval_run_examples_side_by_side_worst_first(server: GatewayServer, tmp_path: Path) -> None:
    from trainer.evaluation.runs import record_run

    out = tmp_path / "eval-out"
    out.mkdir()
    records = [
        {
            "index": 0,
            "prompt": "refund",
            "target": "billing",
            "prediction": "billing",
            "scores": {"agree": 1.0, "token_f1": 1.0},
        },
        {
            "index": 1,
            "prompt": "login",
            "target": "account",
            "prediction": "billing",
            "scores": {"agree": 0.0, "token_f1": 0.0},
        },
        {
            "index": 2,
            "prompt": XSS,
            "target": "technical",
            "prediction": "technical",
            "scores": {"agree": 1.0, "token_f1": 1.0},
        },
    ]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_id = record_run(
        server.store_path,
        kind="eval",
        metrics={"accuracy": 2 / 3},
        config={"out_dir": str(out)},
        dataset_hash="h",
        base_model="tiny",
        adapter_path="a",
    )
    url = f"{server.url}/ui/api/runs/{run_id}/examples"
    assert httpx.get(url).status_code == 401
    page = httpx.get(url, headers=auth()).json()
    assert (page["total"], page["disagreements"]) == (3, 1)
    assert [r["index"] for r in page["rows"]] == [1, 0, 2]  # the disagreement first
    assert page["rows"][0]["teacher"] == "account" and page["rows"][0]["student"] == "billing"
    assert page["rows"][2]["prompt"] == XSS  # data, rendered as text by the page
    missing = httpx.get(f"{server.url}/ui/api/runs/nope/examples", headers=auth())
    assert missing.status_code == 404
    runs = httpx.get(f"{server.url}/ui/api/data", headers=auth()).json()["runs"]
    assert runs[0]["config"]["out_dir"] == str(out)  # the Data page links to it
