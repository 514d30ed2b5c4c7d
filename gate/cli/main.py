"""The ``gate`` command: thin argument parsing over the library; errors become one readable line."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gate.assessment import Assessment
from gate.cli.audit import audit_app
from gate.cli.calibrate import calibrate, report, retarget
from gate.cli.errors import friendly_errors
from gate.cli.index import index_app
from gate.cli.keys import keys_app
from gate.cli.logs import configure_logging
from gate.cli.monitor import MonitorCommand, monitor
from gate.cli.options import ConfigOption, JsonOption, ModelOption
from gate.cli.score import evaluate, score
from gate.cli.serve import serve
from gate.reasons import format_probability

app = typer.Typer(
    name="gate",
    help="Confidence and hallucination gating for LLM endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index_app, name="index", help="Build and search FAISS indexes of reference documents.")
app.add_typer(audit_app, name="audit", help="Read the gating proxy's audit log back: tail and summary.")
app.add_typer(keys_app, name="keys", help="Tenants' API keys: add (shown once, stored hashed), list, revoke.")
app.command()(calibrate)
app.command()(report)
app.command()(retarget)
app.command()(score)
app.command()(evaluate)
app.command()(serve)
app.command(cls=MonitorCommand)(monitor)


@app.command()
@friendly_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to ask the model.")],
    *,
    model: ModelOption = None,
    config: ConfigOption = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer in tokens.")] = None,
    cascade: Annotated[bool, typer.Option(help="Skip the full stage when the free signals decide.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Ask the configured model a question; print its answer and the gate's assessment of it."""
    from gate.backends.factory import run_then_close
    from gate.config import load_settings
    from gate.factory import budget_from, create_gate

    if not question.strip():
        raise ValueError("the question is empty")
    settings = load_settings(config_file=config, model=model, max_tokens=max_tokens)
    configure_logging(settings.log_level)
    gate = create_gate(settings)
    work = gate.assess(question, cascade=cascade and settings.cascade, budget=budget_from(settings))
    assessment = run_then_close(gate.llm, work)
    if as_json:
        typer.echo(json.dumps({"answer": assessment.answer, **assessment.summary()}, indent=2))
    else:
        typer.echo(render_assessment(assessment))


def _decision_line(assessment: Assessment, probability: str) -> str:
    if assessment.decision == "not_assessed":
        return f"decision:    NOT ASSESSED (request kind {assessment.kind}; the answer passes unchanged)"
    return f"decision:    {assessment.decision.upper()} (probability correct {probability}; stage {assessment.stage})"


def render_assessment(assessment: Assessment) -> str:
    """The assessment as a few readable lines for the terminal."""
    probability = format_probability(assessment.probability)
    lines = [
        f"answer:      {assessment.answer if assessment.answer is not None else '(none: abstained before answering)'}",
        _decision_line(assessment, probability),
        f"calibration: {assessment.calibration}",
        "signals:",
    ]
    for key, signal in assessment.signals.items():
        failed = signal.confidence is None
        value = "failed: " + (signal.error or "") if failed else format_probability(signal.confidence, 3)
        lines.append(f"  {key:<13} {value}")
    lines += [f"  {key:<13} skipped: {why}" for key, why in assessment.skipped.items()]
    lines += ["reasons:"] + [f"  - {reason}" for reason in assessment.reasons]
    cost, gate_cost = assessment.cost, assessment.gate_cost
    lines.append(
        f"cost:        {_calls(cost.calls)}, {cost.prompt_tokens + cost.completion_tokens} tokens, "
        f"{cost.seconds:.1f} s (the gate's own share: {_calls(gate_cost.calls)})"
    )
    return "\n".join(lines)


def _calls(count: int) -> str:
    return f"{count} LLM call" if count == 1 else f"{count} LLM calls"


@app.command("config")
@friendly_errors
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration (defaults, then the YAML file, then GATE_* variables), secrets masked."""
    from gate.config import load_settings

    typer.echo(json.dumps(load_settings(config_file=config).display(), indent=2))


def main() -> None:
    """Console entry point."""
    app()
