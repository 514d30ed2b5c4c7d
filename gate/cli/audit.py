"""``gate audit tail`` and ``gate audit summary``: read the proxy's audit log back, rotated files included, or,
with ``--redis``, the Redis stream every replica appends to (``audit_stream``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gate.cli.errors import friendly_errors
from gate.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from gate.config import Settings

audit_app = typer.Typer(
    name="audit",
    help="Read the gating proxy's audit log (audit_path) back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PathArgument = Annotated[
    Path | None,
    typer.Argument(help="The audit log (default: the configured audit_path).", show_default=False),
]
RedisOption = Annotated[
    bool,
    typer.Option("--redis", help="Read the Redis stream of all replicas (the configured state URL) instead of a file."),
]


@audit_app.command()
@friendly_errors
def tail(
    path: PathArgument = None,
    *,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many records to show.")] = 20,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    redis: RedisOption = False,
) -> None:
    """Show the last records, oldest first (one line each; --json prints them as logged)."""
    from gate.audit.report import parse_line, tail_records
    from gate.audit.stream import stream_lines

    if redis:
        parsed = [parse_line(raw) for raw in stream_lines(_stream_settings(path, config), last=lines)]
        records, malformed = [record for record in parsed if record is not None], parsed.count(None)
    else:
        records, malformed = tail_records(_audit_path(path, config), lines)
    for record in records:
        typer.echo(json.dumps(record, ensure_ascii=False) if as_json else render_line(record))
    if malformed:
        typer.echo(f"skipped {malformed} malformed line(s)", err=True)


@audit_app.command()
@friendly_errors
def summary(
    path: PathArgument = None, *, config: ConfigOption = None, as_json: JsonOption = False, redis: RedisOption = False
) -> None:
    """Decision mix, error types, p50/p99 latency, mean probability and requests per model, over all files."""
    from gate.audit.report import audit_files, parse_line, read_records, summarize
    from gate.audit.stream import STREAM_KEY, stream_lines

    if redis:
        result = summarize(parse_line(raw) for raw in stream_lines(_stream_settings(path, config)))
        source: dict[str, Any] = {"stream": STREAM_KEY}
        shown = f"Redis stream {STREAM_KEY}"
    else:
        files = audit_files(_audit_path(path, config))
        result = summarize(read_records(files))
        source, shown = {"files": [str(f) for f in files]}, f"{len(files)} file(s)"
    if as_json:
        typer.echo(json.dumps({**source, **result.numbers()}, indent=2))
    else:
        typer.echo(render_summary(result.numbers(), shown))


def _stream_settings(path: Path | None, config: Path | None) -> Settings:
    """The settings naming the Redis the stream is on; a PATH makes no sense with ``--redis``."""
    from gate.config import load_settings

    if path is not None:
        raise ValueError("give either a PATH or --redis, not both")
    settings = load_settings(config_file=config)
    if settings.state == "memory":
        raise ValueError("--redis reads the stream on the configured state: set state to a redis:// URL (GATE_STATE)")
    return settings


def _audit_path(path: Path | None, config: Path | None) -> Path:
    """The path given, else the configured ``audit_path``; it must exist (or have rotated files)."""
    from gate.audit.report import audit_files
    from gate.config import load_settings

    if path is None:
        path = load_settings(config_file=config).audit_path
        if path is None:
            raise ValueError("no audit log: give its PATH or configure audit_path (GATE_AUDIT_PATH)")
    if not audit_files(path):
        raise FileNotFoundError(f"no audit log at {path} (nor rotated files {path}.1 ...)")
    return path


def render_line(record: dict[str, Any]) -> str:
    """One record as a short line: time, request id, mode, decision, probability, latency, question."""
    probability = record.get("probability")
    shown_p = f"p={probability:.2f}" if isinstance(probability, int | float) else "p=n/a"
    error = record.get("error")
    decision = f"error:{error.get('type')}" if isinstance(error, dict) else record.get("decision") or "-"
    latency = (record.get("latency_ms") or {}).get("total")
    shown_ms = f"{latency:.0f} ms" if isinstance(latency, int | float) else "? ms"
    question = record.get("question") or f"sha256:{str(record.get('question_sha256'))[:12]}"
    fields = [record.get("time"), record.get("request_id"), record.get("mode"), decision, shown_p, shown_ms]
    return "  ".join(str(value) for value in fields) + f"  {question!r}"


def render_summary(numbers: dict[str, Any], source: str) -> str:
    """The summary as a few readable lines; ``source`` says what was read (files, the stream)."""
    records = numbers["records"]
    lines = [
        f"audit log: {source}, {numbers['lines']} line(s), {numbers['malformed']} malformed (skipped)",
        f"period:    {numbers['first']} .. {numbers['last']}",
        f"requests:  {records}",
        "decisions: " + _mix(numbers["decisions"], records),
        "errors:    " + _mix(numbers["errors"] | numbers["signal_errors"], records),
    ]
    for name, label in (("total", "total"), ("gate", "gate's own")):
        p50, p99 = numbers["latency_ms"][name]["p50"], numbers["latency_ms"][name]["p99"]
        lines.append(f"latency:   {label:<10} p50 {_ms(p50)}, p99 {_ms(p99)}")
    mean = numbers["mean_probability"]
    lines.append(f"probability: mean {mean:.3f}" if mean is not None else "probability: n/a (no decisions)")
    lines.append("models:    " + _mix(numbers["models"], records))
    return "\n".join(lines)


def _mix(counts: dict[str, int], total: int) -> str:
    if not counts:
        return "none"
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{key} {count} ({100.0 * count / max(total, 1):.1f}%)" for key, count in ordered)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
