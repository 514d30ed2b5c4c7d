"""Build a ready :class:`~gate.pipeline.Gate` from settings: the model, its calibration, retrieval."""

from __future__ import annotations

import logging
from pathlib import Path

from calibration.artifact import Artifact, load_artifact
from estimators.familiarity import ConceptCache
from gate.backends.factory import create_llm
from gate.claim_judge import claim_judge_from
from gate.concept_cache import MemoryConceptCache, SqliteConceptCache, default_cache_path
from gate.config import DEFAULT_MODEL, Settings
from gate.pipeline import Budget, Calibration, Gate
from gate.suite import CANDIDATE_SUITE, DEFAULT_SUITE, SignalSpec, select, without_precheck
from gate.uncalibrated import Uncalibrated

logger = logging.getLogger(__name__)

SHIPPED_ARTIFACT = Path(__file__).parent / "data" / "gemma-3-270m.calibration.json"
"""Fitted by ``gate calibrate`` on the development sets for the embedded model (see benchmarks/results)."""
SHIPPED_NO_PRECHECK_ARTIFACT = Path(__file__).parent / "data" / "gemma-3-270m.no-precheck.calibration.json"
"""The same signals fitted with familiarity in the full stage (``precheck: false``)."""


def suite_from(settings: Settings) -> tuple[SignalSpec, ...]:
    """The default suite, or the signals ``settings.signals`` names (any of ``gate.suite.CANDIDATE_SUITE``);
    ``precheck: false`` moves familiarity from before generation into the full stage."""
    suite = DEFAULT_SUITE if settings.signals is None else select(CANDIDATE_SUITE, settings.signals)
    return suite if settings.precheck else without_precheck(suite)


def load_calibration(settings: Settings, suite: tuple[SignalSpec, ...]) -> Calibration:
    """The configured artifact, else the shipped one for the embedded model, else the uncalibrated default.

    An artifact fitted for another model or signal configuration is refused, never silently applied.
    """
    path = settings.artifact
    shipped = SHIPPED_ARTIFACT if settings.precheck else SHIPPED_NO_PRECHECK_ARTIFACT
    if path is None and settings.model == DEFAULT_MODEL and shipped.is_file():
        path = shipped
    if path is None:
        logger.warning("no calibration artifact for %s: the gate runs uncalibrated", settings.model)
        return Uncalibrated()
    artifact: Artifact = load_artifact(path)
    artifact.check_applies_to(settings.model, [spec.to_dict() for spec in suite])
    return artifact


def concept_cache_from(settings: Settings) -> ConceptCache | None:
    """The familiarity cache the settings ask for, scoped to the configured model.

    With ``state`` on Redis the ``file`` cache (the default) becomes the Redis one, shared by every replica;
    ``memory`` and ``off`` keep their meaning, for deployments that must not send concepts to Redis.
    """
    if settings.familiarity_cache == "off":
        return None
    if settings.familiarity_cache == "file" and settings.state != "memory":
        from gate.state.redis_cache import RedisConceptCache  # redis-py is imported only when configured

        return RedisConceptCache.from_settings(settings)
    if settings.familiarity_cache == "memory":
        return MemoryConceptCache()
    return SqliteConceptCache(default_cache_path(settings.cache_dir), model=settings.model)


def budget_from(settings: Settings) -> Budget:
    """The per-request limits on the gate's own work."""
    return Budget(
        max_calls=settings.max_gate_calls, max_tokens=settings.max_gate_tokens, max_seconds=settings.max_gate_seconds
    )


def create_gate(settings: Settings, *, concurrent_signals: bool | None = None, calibrated: bool = True) -> Gate:
    """The gate for ``settings``: upstream model, calibration, and the PACE index when one is configured.

    ``calibrated=False`` skips the artifact (``gate calibrate`` collects raw signals and needs none).
    """
    llm = create_llm(settings)
    searcher = None
    if settings.index_dir is not None:
        from retrieval.embedders import create_embedder
        from retrieval.index import Index

        searcher = Index.load(settings.index_dir, create_embedder(settings.embedder))
    local = settings.model.startswith("local/")
    suite = suite_from(settings)
    return Gate(
        llm,
        load_calibration(settings, suite) if calibrated else Uncalibrated(),
        suite=suite,
        # PACE gets the index but not an embedder of its own: the shipped calibration was fitted on PACE
        # without embedding features, and a signal must mean at serving what it meant when fitted.
        searcher=searcher,
        answer_tokens=settings.max_tokens,
        concept_cache=concept_cache_from(settings),
        context_tokens=settings.context_tokens,
        assess_all=settings.assess_all,
        tool_calls=settings.tool_calls,
        # raw signals for calibration are collected on whole answers: no claim route then
        claims=claim_judge_from(settings) if calibrated else None,
        # the embedded model serves one call at a time: running signals one by one costs nothing there
        concurrent_signals=not local if concurrent_signals is None else concurrent_signals,
    )
