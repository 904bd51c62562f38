"""`distill rollout`: start, watch and steer rollouts through the gateway's admin API."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

GATEWAY = click.option(
    "--gateway",
    envvar="DISTILL_GATEWAY",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The gateway's root URL.",
)
TOKEN = click.option(
    "--admin-token",
    envvar="DISTILL_ADMIN_TOKEN",
    required=True,
    help="Admin token (or DISTILL_ADMIN_TOKEN).",
)


def call(method: str, gateway: str, path: str, token: str, body: Any = None) -> Any:
    try:
        response = httpx.request(
            method,
            f"{gateway.rstrip('/')}/admin{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the gateway at {gateway} ({exc})") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        raise click.ClickException(f"{response.status_code}: {message}")
    return response.json()


@click.group()
def rollout() -> None:
    """Shadow, canary, promote and roll back a student on a route."""


@rollout.command()
@click.option("--route", required=True)
@click.option("--adapter", required=True, help="The adapter (student) to roll out.")
@click.option(
    "--steps",
    default="1,5,25,50,100",
    show_default=True,
    help="Canary percentages, rising, ending at 100.",
)
@click.option(
    "--shadow-rate",
    type=float,
    default=None,
    help="Share of teacher traffic mirrored while gating (default from config).",
)
@click.option(
    "--gate",
    "gates",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a gate, e.g. --gate min_requests=200 --gate min_agreement=0.95.",
)
@GATEWAY
@TOKEN
def start(
    route: str,
    adapter: str,
    steps: str,
    shadow_rate: float | None,
    gates: tuple[str, ...],
    gateway: str,
    admin_token: str,
) -> None:
    """Start a rollout: shadow first, then the canary steps."""
    try:
        step_list = [float(s) for s in steps.split(",") if s.strip()]
        gate_values = {k.strip(): float(v) for k, _, v in (g.partition("=") for g in gates)}
    except ValueError as exc:
        raise click.BadParameter(f"numbers expected ({exc})") from None
    body = {
        "route": route,
        "adapter": adapter,
        "steps": step_list,
        "gates": gate_values,
        "shadow_rate": shadow_rate,
    }
    result = call("POST", gateway, "/rollouts", admin_token, body)
    click.echo(f"rollout {result['id']}: {adapter} on {route} is in {result['state']}")


@rollout.command()
@click.option("--route", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON.")
@GATEWAY
@TOKEN
def status(route: str | None, as_json: bool, gateway: str, admin_token: str) -> None:
    """Current rollouts, their live numbers, and every decision with its reasons."""
    result = call("GET", gateway, f"/rollouts{'?route=' + route if route else ''}", admin_token)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for item in result["history"]:
        weight = next((a["weight"] for a in result["active"] if a["id"] == item["id"]), None)
        shown = f" at {weight:g}%" if weight is not None else ""
        click.echo(f"{item['route']}: {item['adapter']} {item['state']}{shown} ({item['id']})")
        for d in item["decisions"]:
            click.echo(
                f"  {d['ts'][:19]}  {d['decision']:<8} step {d['from_step']}"
                f"->{d['to_step']}  {d['reason']}"
            )


def _action(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text)
    @click.option("--route", required=True)
    @GATEWAY
    @TOKEN
    def command(route: str, gateway: str, admin_token: str) -> None:
        result = call("POST", gateway, f"/rollouts/{route}/{name}", admin_token)
        click.echo(f"{route}: {result['adapter']} is {result['state']} at {result['weight']:g}%")

    return command


for _name, _help in [
    ("pause", "Hold the rollout at its current weight."),
    ("resume", "Continue a paused rollout."),
    ("promote", "Give the student 100% now."),
    ("rollback", "Send all traffic back to the teacher now."),
]:
    rollout.add_command(_action(_name, _help))
