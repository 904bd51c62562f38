"""`distill teacher`: run the deterministic demo teacher."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of prompts answered with a wrong label (deterministic per prompt).",
)
@click.option(
    "--seed",
    default="teacher",
    show_default=True,
    help="Which prompts are answered wrongly when --error-rate > 0.",
)
@click.option(
    "--latency-ms", type=float, default=0.0, show_default=True, help="Added to every answer."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    default=("gpt-4o",),
    show_default=True,
    help="Model names listed by GET /v1/models (it answers any name).",
)
def teacher(
    host: str,
    port: int,
    error_rate: float,
    seed: str,
    latency_ms: float,
    models: tuple[str, ...],
) -> None:
    """Run the demo teacher: an OpenAI-compatible server for the support-triage task."""
    import uvicorn

    from distill_demo.teacher.server import TeacherSettings, create_teacher_app

    settings = TeacherSettings(
        error_rate=error_rate, seed=seed, latency_s=latency_ms / 1000, models=models
    )
    click.echo(f"demo teacher on http://{host}:{port}/v1")
    uvicorn.run(create_teacher_app(settings), host=host, port=port, log_level="warning")
