"""``gate monitor``: is the calibration's guarantee still met? Labels joined with the audit log, per tenant,
artifact and tier, with one-sided Clopper-Pearson bounds (the rule is in :mod:`gate.monitor`).

Exit status, for cron: 0 when no group is in alarm (``cannot tell yet`` included), 2 on an alarm (the recalibration
command is printed and logged), 1 on a usage error (bad options, missing files, an unreachable Redis).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from gate.cli.errors import USER_ERRORS
from gate.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from gate.config import Settings
    from gate.monitor import GroupReport, Joined, Targets

EXIT_OK, EXIT_USAGE, EXIT_ALARM = 0, 1, 2


class MonitorCommand(TyperCommand):
    """Click answers a bad option with exit status 2; ``gate monitor`` keeps 2 for an alarm, so usage errors get 1."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            # click's UsageError and its kin (typer vendors its own click, so the class is not importable as
            # click.UsageError); anything else keeps its status
            if getattr(exc, "exit_code", None) == 2:
                exc.exit_code = EXIT_USAGE  # type: ignore[attr-defined]
            raise


def _level(text: str) -> Any:
    return Annotated[float | None, typer.Option(min=0.0, max=1.0, help=text, show_default=False)]


AnswerLevel = _level("Wanted accuracy among answered requests (default: the artifact's).")
HedgeLevel = _level("Wanted accuracy among answered or hedged requests (default: the artifact's).")
ConfidenceLevel = _level("Confidence of the bounds (default: the artifact's, else 0.9).")


def monitor(
    audit: Annotated[
        Path | None, typer.Argument(help="The audit log (default: the configured audit_path).", show_default=False)
    ] = None,
    *,
    feedback: Annotated[
        Path | None,
        typer.Option(help="The labels (default: feedback_path, or beside the audit log).", show_default=False),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            metavar="URL",
            help="Read the Redis streams gate:audit and gate:feedback of every replica at URL instead of files.",
            show_default=False,
        ),
    ] = None,
    artifact: Annotated[
        Path | None,
        typer.Option(help="The artifact whose targets apply (default: the configured one).", show_default=False),
    ] = None,
    answer_level: AnswerLevel = None,
    hedge_level: HedgeLevel = None,
    confidence_level: ConfidenceLevel = None,
    window: Annotated[
        int | None,
        typer.Option(
            min=1, help="Only the last N labelled requests of each group (drift is not diluted).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Error rate among answered requests per tenant and artifact, its bounds, and OK / cannot tell / ALARM.

    The targets are the artifact's (answer_level: accuracy among answered; hedge_level: among answered or
    hedged; confidence_level: of the bounds), each overridden by the option of the same name, spelled as in
    gate calibrate. Exit status: 0 no alarm, 2 alarm, 1 usage error.
    """
    from redis.exceptions import RedisError

    from gate.config import without_password

    try:
        levels = (answer_level, hedge_level, confidence_level)
        reports, joined, targets = _run(
            audit, feedback=feedback, redis=redis, artifact=artifact, levels=levels, window=window, config=config
        )
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except RedisError as exc:  # unreachable, refused, wrong password: the URL shown without its password
        where = without_password(redis or "")
        typer.secho(f"error: cannot read the Redis streams at {where}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    alarms = [report for report in reports if report.status == "alarm"]
    if as_json:
        typer.echo(json.dumps({"labels": joined.counts(), "groups": [r.to_dict() for r in reports]}, indent=2))
    else:
        typer.echo(render(reports, joined))
    for report in alarms:  # one line each on stderr: what a cron job's log and mail keep
        typer.echo(_alarm_line(report, targets(report.calibration)), err=True)
    raise typer.Exit(EXIT_ALARM if alarms else EXIT_OK)


def _run(
    audit: Path | None,
    *,
    feedback: Path | None,
    redis: str | None,
    artifact: Path | None,
    levels: tuple[float | None, float | None, float | None],
    window: int | None,
    config: Path | None,
) -> tuple[list[GroupReport], Joined, Callable[[str], Targets]]:
    from gate.config import load_settings
    from gate.monitor import evaluate, join, latest_labels

    for name, value in zip(("answer-level", "hedge-level", "confidence-level"), levels, strict=True):
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(f"--{name} is a probability strictly between 0 and 1, got {value:g}")
    settings = load_settings(config_file=config, state=redis, artifact=artifact)
    audit_records, feedback_records = _sources(settings, audit, feedback, from_redis=redis is not None)
    labels, malformed = latest_labels(feedback_records)
    joined = join(audit_records, labels)
    joined.malformed_labels = malformed
    known, fallback = _targets(settings, levels)
    reports = evaluate(joined.requests, targets=known, default=fallback, confidence=levels[2], window=window)
    return reports, joined, lambda calibration: known.get(calibration, fallback)


def _sources(
    settings: Settings, audit: Path | None, feedback: Path | None, *, from_redis: bool
) -> tuple[Iterable[dict[str, Any] | None], Iterable[dict[str, Any] | None]]:
    """The audit records and the labels, from the Redis streams or from the files (rotated ones included)."""
    from gate.audit.feedback import FEEDBACK_STREAM_KEY, feedback_path_of
    from gate.audit.report import audit_files, parse_line, read_records
    from gate.audit.stream import STREAM_KEY, stream_lines

    if from_redis:
        if audit is not None or feedback is not None:
            raise ValueError("give either files (AUDIT, --feedback) or --redis, not both")
        labels = [parse_line(raw) for raw in stream_lines(settings, key=FEEDBACK_STREAM_KEY)]
        return _parsed(stream_lines(settings, key=STREAM_KEY)), labels
    audit = audit or settings.audit_path
    if audit is None:
        raise ValueError("no audit log: give its path or configure audit_path (GATE_AUDIT_PATH), or use --redis URL")
    feedback = feedback or settings.feedback_path or feedback_path_of(settings.model_copy(update={"audit_path": audit}))
    assert feedback is not None  # beside the audit log at the least
    for path, what in ((audit, "audit log"), (feedback, "labels file")):
        if not audit_files(path):
            raise FileNotFoundError(f"no {what} at {path} (nor rotated files {path}.1 ...)")
    return read_records(audit_files(audit)), list(read_records(audit_files(feedback)))


def _parsed(lines: Iterable[bytes]) -> Iterator[dict[str, Any] | None]:
    from gate.audit.report import parse_line

    return (parse_line(raw) for raw in lines)


def _targets(
    settings: Settings, levels: tuple[float | None, float | None, float | None]
) -> tuple[dict[str, Targets], Targets]:
    """The targets of the known artifacts (the configured one and the shipped ones) by id, and what applies to other
    artifacts (the options only); each level given as an option overrides an artifact's."""
    from dataclasses import replace

    from calibration.artifact import load_artifact
    from gate.factory import SHIPPED_ARTIFACT, SHIPPED_NO_PRECHECK_ARTIFACT
    from gate.monitor import Targets

    given = Targets(*levels)
    overrides = {name: value for name, value in vars(given).items() if value is not None}
    paths = [settings.artifact] if settings.artifact is not None else []
    paths += [path for path in (SHIPPED_ARTIFACT, SHIPPED_NO_PRECHECK_ARTIFACT) if path.is_file()]
    known = {}
    for path in paths:
        loaded = load_artifact(path)
        known[loaded.id] = replace(Targets.from_artifact(loaded.target), **overrides)
    return known, given


def render(reports: list[GroupReport], joined: Joined) -> str:
    """The reports as a table, and where the labels went."""
    from gate.monitor import STATUS_TEXT

    counts = joined.counts()
    lines = [
        f"labels: {counts['labels']} request(s) labelled, {counts['joined']} answered or hedged, "
        f"{counts['not_delivered']} on requests not answered (abstained, not assessed, failed), "
        f"{counts['unjoined']} not in the audit log, {counts['malformed_labels']} malformed"
    ]
    if not reports:
        return "\n".join([*lines, "no labelled answered requests yet"])
    header = ("tenant", "artifact", "tier", "labelled", "errors", "rate", "bounds", "target", "confidence", "status")
    rows = [header]
    for r in reports:
        bounds = "-" if r.lower is None or r.upper is None else f"{r.lower:.3f} .. {r.upper:.3f}"
        rate = "-" if r.error_rate is None else f"{r.error_rate:.3f}"
        target = "-" if r.target is None else f"{r.target:.3f}"
        window = f" (last {r.window})" if r.window else ""
        rows.append((r.tenant, r.calibration, r.tier, f"{r.labelled}{window}", str(r.errors), rate, bounds, target,
                     f"{r.confidence:g}", STATUS_TEXT[r.status]))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if any(r.status == "no_target" for r in reports):
        table.append("no target: not the configured artifact nor a shipped one; give --artifact or the levels")
    return "\n".join([*lines, *table])


def _alarm_line(report: GroupReport, targets: Targets) -> str:
    from gate.monitor import recalibration_command

    return (
        f"ALARM: tenant {report.tenant}, artifact {report.calibration}, tier {report.tier}: {report.errors} errors "
        f"among the last {report.labelled} labelled requests, error rate >= {report.lower:.3f} with confidence "
        f"{report.confidence:g}, above the target {report.target:.3f}; recalibrate: {recalibration_command(targets)}"
    )
