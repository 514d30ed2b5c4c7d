"""Watching the guarantee live: labels joined with the audit log, the error rate among answered requests per tenant
and artifact, one-sided Clopper-Pearson bounds on it, and the rule that raises an alarm.

A calibration artifact promises, with probability ``confidence_level``, an error rate among answered requests of at
most ``1 - answer_level`` (tier ``answer``: the gate's decision was ``answer``), and among answered or hedged ones of
at most ``1 - hedge_level`` (tier ``delivered``: ``answer`` or ``hedge``). Labels that arrive later
(``POST /v1/gate/feedback``) say which answers were right; with ``k`` errors among ``n`` labelled requests of a tier:

- ``lower`` / ``upper``: the one-sided Clopper-Pearson bounds at ``confidence`` (``scipy.stats.beta`` quantiles), so
  the true error rate is below ``upper`` with probability ``confidence``, and above ``lower`` likewise;
- **alarm** when ``lower > target``: the target is demonstrably no longer met (the exact binomial test of
  "error rate <= target" rejects at level ``1 - confidence``);
- **ok** when ``upper <= target``: the labels show the target holds;
- **cannot tell** in between (too few labels, or an error rate near the target); **no labels**, **no target**.

With ``window`` only the last ``window`` labelled requests of each tier count (in the order they were served), so a
drift shows within about a window instead of being diluted by a long easy history. Checking after every label is
a sequential test: each check alone raises a false alarm with probability at most ``1 - confidence`` when the
target holds exactly, but many checks raise more (``benchmarks/results/monitor.md`` measures it). A request with
several labels counts once, with its latest label. No HTTP here: :mod:`gate.cli.monitor` and
:mod:`gate.server.feedback` read and write the data.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy.stats import beta

from calibration._candidates import risk_levels

Tier = Literal["answer", "delivered"]
Status = Literal["ok", "cannot_tell", "alarm", "no_labels", "no_target"]

TIERS: Mapping[Tier, frozenset[str]] = {"answer": frozenset({"answer"}), "delivered": frozenset({"answer", "hedge"})}
"""Which gate decisions each tier's guarantee is about."""
DEFAULT_TENANT = "default"
"""The tenant of a request whose audit record (and label) names none."""
DEFAULT_CONFIDENCE = 0.9
"""The confidence of the bounds when neither the artifact nor the caller gives one."""
STATUS_TEXT: Mapping[Status, str] = {
    "ok": "OK",
    "cannot_tell": "cannot tell yet",
    "alarm": "ALARM",
    "no_labels": "no labels",
    "no_target": "no target",
}


@dataclass(frozen=True)
class Targets:
    """The accuracy levels an artifact was fitted for (``None``: unknown), and the confidence of its guarantee."""

    answer_level: float | None = None
    hedge_level: float | None = None
    confidence_level: float | None = None

    @classmethod
    def from_artifact(cls, target: Mapping[str, Any] | None) -> Targets:
        """The ``target`` block of an artifact (``calibration.artifact.Artifact.target``); missing keys stay unknown."""
        target = target or {}
        return cls(
            answer_level=_level(target.get("answer_level")),
            hedge_level=_level(target.get("hedge_level")),
            confidence_level=_level(target.get("confidence_level")),
        )

    def error_target(self, tier: Tier) -> float | None:
        """The largest error rate ``tier`` may have (``1 - level``), or ``None`` when the level is unknown."""
        level = self.answer_level if tier == "answer" else self.hedge_level
        return None if level is None else risk_levels(level)[0]


def _level(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    return float(value) if ok else None


def error_bounds(errors: int, labelled: int, *, confidence: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson (lower, upper) bounds on an error rate from ``errors`` among ``labelled``.

    Each bound alone holds with probability ``confidence``: ``P(rate < lower) <= 1 - confidence`` and
    ``P(rate > upper) <= 1 - confidence``. Exact (beta quantiles of the binomial), so valid for any ``labelled``.
    """
    if not 0 <= errors <= labelled or labelled < 1:
        raise ValueError(f"need 0 <= errors <= labelled and labelled >= 1, got {errors} errors among {labelled}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    lower = 0.0 if errors == 0 else float(beta.ppf(1.0 - confidence, errors, labelled - errors + 1))
    upper = 1.0 if errors == labelled else float(beta.ppf(confidence, errors + 1, labelled - errors))
    return lower, upper


def status_of(lower: float, upper: float, target: float | None) -> Status:
    """The rule of the module docstring: alarm when ``lower > target``, ok when ``upper <= target``."""
    if target is None:
        return "no_target"
    if lower > target:
        return "alarm"
    return "ok" if upper <= target else "cannot_tell"


@dataclass(frozen=True)
class GroupReport:
    """One tier of one (tenant, artifact): labelled answered requests, errors, bounds and the status."""

    tenant: str
    calibration: str
    tier: Tier
    labelled: int
    errors: int
    error_rate: float | None
    lower: float | None
    upper: float | None
    target: float | None
    confidence: float
    window: int | None
    status: Status

    @classmethod
    def of(
        cls,
        key: tuple[str, str, Tier],
        outcomes: Sequence[bool],
        *,
        target: float | None,
        confidence: float,
        window: int | None = None,
    ) -> GroupReport:
        """The report of ``outcomes`` (True: the answer was wrong), oldest first; only the last ``window`` count."""
        counted = outcomes[-window:] if window else outcomes
        labelled, errors = len(counted), sum(counted)
        if labelled == 0:
            return cls(*key, 0, 0, None, None, None, target, confidence, window, "no_labels")
        lower, upper = error_bounds(errors, labelled, confidence=confidence)
        status = status_of(lower, upper, target)
        return cls(*key, labelled, errors, errors / labelled, lower, upper, target, confidence, window, status)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``gate monitor --json`` prints per group)."""
        return asdict(self)


@dataclass(frozen=True)
class Label:
    """The latest label of one request: whether its answer was correct, and the tenant that sent the label."""

    correct: bool
    tenant: str | None = None


@dataclass(frozen=True)
class LabelledRequest:
    """An answered (or hedged) request that has a label, as the audit log recorded it."""

    request_id: str
    tenant: str
    calibration: str
    decision: str
    correct: bool


@dataclass
class Joined:
    """Labels joined with the audit log: the labelled requests in the order they were served, and what did not join."""

    requests: list[LabelledRequest] = field(default_factory=list)
    labels: int = 0
    unjoined: int = 0
    not_delivered: int = 0
    malformed_labels: int = 0
    malformed_records: int = 0

    def counts(self) -> dict[str, int]:
        """How many labels there were and where they went."""
        return {
            "labels": self.labels,
            "joined": len(self.requests),
            "not_delivered": self.not_delivered,
            "unjoined": self.unjoined,
            "malformed_labels": self.malformed_labels,
            "malformed_records": self.malformed_records,
        }


def latest_labels(records: Iterable[Mapping[str, Any] | None]) -> tuple[dict[str, Label], int]:
    """Feedback records (oldest first) as the latest label per request id, and the malformed ones passed over."""
    labels: dict[str, Label] = {}
    malformed = 0
    for record in records:
        request_id = None if record is None else record.get("request_id")
        correct = None if record is None else record.get("correct")
        if not isinstance(request_id, str) or not isinstance(correct, bool):
            malformed += 1
            continue
        tenant = record.get("tenant") if isinstance(record.get("tenant"), str) else None  # type: ignore[union-attr]
        labels.pop(request_id, None)  # a newer label replaces an older one
        labels[request_id] = Label(correct, tenant)
    return labels, malformed


def tenant_of(record: Mapping[str, Any], label: Label | None = None) -> str:
    """The tenant a request belongs to: its audit record's, else the labeller's, else the default one."""
    tenant = record.get("tenant")
    if isinstance(tenant, str) and tenant:
        return tenant
    return label.tenant if label is not None and label.tenant else DEFAULT_TENANT


def join(audit_records: Iterable[Mapping[str, Any] | None], labels: Mapping[str, Label]) -> Joined:
    """Join ``labels`` with audit records (in the order served); only labelled records are kept in memory."""
    joined = Joined(labels=len(labels))
    seen: set[str] = set()
    for record in audit_records:
        if record is None:
            joined.malformed_records += 1
            continue
        request_id = record.get("request_id")
        label = labels.get(request_id) if isinstance(request_id, str) else None
        if label is None or request_id in seen:
            continue
        seen.add(request_id)
        decision = record.get("decision")
        if decision not in TIERS["delivered"]:  # abstained, not assessed, passed through or failed
            joined.not_delivered += 1
            continue
        calibration = str(record.get("calibration") or "unknown")
        tenant = tenant_of(record, label)
        joined.requests.append(LabelledRequest(request_id, tenant, calibration, decision, label.correct))
    joined.unjoined = len(labels) - len(seen)
    return joined


def evaluate(
    requests: Iterable[LabelledRequest],
    *,
    targets: Mapping[str, Targets],
    default: Targets = Targets(),
    confidence: float | None = None,
    window: int | None = None,
) -> list[GroupReport]:
    """One report per (tenant, artifact, tier) that has labelled requests, sorted by tenant, artifact, tier.

    ``targets`` maps artifact ids to what they were fitted for (``default`` for the others); ``confidence``
    overrides the artifact's ``confidence_level`` (:data:`DEFAULT_CONFIDENCE` when neither gives one).
    """
    groups: dict[tuple[str, str, Tier], list[bool]] = {}
    for request in requests:
        for tier, decisions in TIERS.items():
            if request.decision in decisions:
                groups.setdefault((request.tenant, request.calibration, tier), []).append(not request.correct)
    reports = []
    for key in sorted(groups):
        target = targets.get(key[1], default)
        level = confidence or target.confidence_level or DEFAULT_CONFIDENCE
        reports.append(
            GroupReport.of(key, groups[key], target=target.error_target(key[2]), confidence=level, window=window)
        )
    return reports


def recalibration_command(targets: Targets) -> str:
    """The ``gate calibrate`` command that refits an artifact for the same targets on freshly labelled questions."""
    levels = [f"--{name.replace('_', '-')} {value:g}" for name, value in asdict(targets).items() if value is not None]
    return " ".join(["gate calibrate -d <recent labelled questions, JSONL> --out <new artifact>.json", *levels])


class LiveMonitor:
    """The server's running view (per replica, in memory): the requests this replica served lately, and a window
    of the latest labels per (tenant, artifact, tier).

    ``remember`` is called with every audit record the replica writes; a label for a request this replica did not
    serve (another replica or worker did, or it is older than ``recent`` requests) joins only in ``gate monitor``.
    Windows hold the last ``window`` labels in the order they arrived (a relabelled request moves to the end).
    """

    def __init__(self, *, window: int, recent: int) -> None:
        if window < 1 or recent < 1:
            raise ValueError(f"window and recent must be at least 1, got {window} and {recent}")
        self.window, self.recent = window, recent
        self._served: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._windows: dict[tuple[str, str, Tier], OrderedDict[str, bool]] = {}

    def remember(self, record: Mapping[str, Any]) -> None:
        """Note a request this replica served, if the gate answered or hedged it (nothing else is monitored)."""
        request_id, decision = record.get("request_id"), record.get("decision")
        if not isinstance(request_id, str) or decision not in TIERS["delivered"]:
            return
        self._served[request_id] = (tenant_of(record), str(record.get("calibration") or "unknown"), decision)
        self._served.move_to_end(request_id)
        while len(self._served) > self.recent:
            self._served.popitem(last=False)

    def label(
        self, request_id: str, correct: bool, *, targets: Targets, confidence: float | None = None
    ) -> list[GroupReport] | None:
        """Add a label; the reports of the windows it changed, or ``None`` when this replica does not know the id."""
        served = self._served.get(request_id)
        if served is None:
            return None
        tenant, calibration, decision = served
        reports = []
        for tier, decisions in TIERS.items():
            if decision not in decisions:
                continue
            key = (tenant, calibration, tier)
            window = self._windows.setdefault(key, OrderedDict())
            window.pop(request_id, None)
            window[request_id] = not correct
            while len(window) > self.window:
                window.popitem(last=False)
            level = confidence or targets.confidence_level or DEFAULT_CONFIDENCE
            outcomes = list(window.values())
            target = targets.error_target(tier)
            reports.append(GroupReport.of(key, outcomes, target=target, confidence=level, window=self.window))
        return reports
