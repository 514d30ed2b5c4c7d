"""Calibrated claim probabilities with a guarantee on the kept claims: fit both claim routes, write their
artifacts, evaluate them on parts nothing was fitted or chosen on.

Run: ``.venv/bin/python -m benchmarks.claim_calibration [--seed 0 --delta 0.1 --draws 300]``
(the closed-book route needs ``python -m benchmarks.claim_samples`` first; it uses the prompts sampled so far).

- **grounded** (``claim_support``, no LLM call): rows = HaluEval QA answers as claims against their knowledge
  (right = supported, hallucinated = unsupported); writes ``gate/data/gemma-3-270m.claims-grounded.calibration.json``.
- **closed-book** (``claim_consistency`` against 5 samples of the embedded Gemma 3 270M): rows = FActScore
  sentences (unsupported = any human atomic fact NS; IR-only sentences dropped); writes
  ``gate/data/gemma-3-270m.claims-closed.calibration.json`` only if the signal is informative on the learning rows.

Each source is split 40/20/20/20 into fit / calibrate / threshold / test by a seeded hash of the *answer* id
(QA item, FActScore topic), never splitting the claims of one answer. Fusion (one signal) and calibrator are
fitted on fit + calibrate (``calibration.fitting.fit_stage``), alpha is the smallest target those rows support
(``benchmarks.claim_calibration_fit``), thresholds are certified by Learn-then-Test (Hoeffding-Bentkus bound,
``calibration.risk_control``) on the threshold part, and the test part is only scored. HaluEval summarization
and dialogue (the Grounding section's test pairs) and FELM are scored with the fitted stages, never fitted on.
Writes the "Calibrated claims" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.claim_calibration_eval import (
    claim_metrics,
    guarantee_draws,
    raw_metrics,
    response_scores,
    segment_metrics,
)
from benchmarks.claim_calibration_fit import RouteFit, answer_split, build_artifact, fit_route
from benchmarks.claim_calibration_render import render_section
from benchmarks.claim_rows import (
    ClaimRows,
    closed_rows,
    felm_rows,
    grounded_rows,
    halueval_pair_claims,
    length_matched_items,
)
from benchmarks.claim_samples import load_samples
from benchmarks.common import machine_description
from benchmarks.longform_results import RESULTS
from calibration.metrics import auroc
from gate.suite import SignalSpec

DATA_DIR = Path(__file__).resolve().parents[1] / "gate" / "data"
GROUNDED_PATH = DATA_DIR / "gemma-3-270m.claims-grounded.calibration.json"
CLOSED_PATH = DATA_DIR / "gemma-3-270m.claims-closed.calibration.json"
GROUNDED_PARAMS = {"aggregate": "mean", "missing_penalty": 0.25}
"""The variant chosen on HaluEval summarization/dialogue dev pairs (Grounding section): word overlap, no embedder."""
PENALTIES = (0.0, 0.25, 0.5)
"""Missing-detail penalties tried for the closed-book route, chosen by AUROC on its learning rows."""
SAMPLING = {"n_samples": 5, "temperature": 1.0, "max_tokens": 128, "seed": 0}
TITLE = "Calibrated claims"


def choose_penalty(samples: dict, seed: int) -> tuple[float, dict[float, float]]:
    """The closed-book penalty with the best AUROC on the learning rows (fit + calibrate) of its split."""
    scores = {}
    for penalty in PENALTIES:
        rows = closed_rows(samples, penalty)
        rows = rows.subset(~np.isnan(rows.value))
        learn = np.isin(answer_split(rows.group, seed), ("fit", "calibrate"))
        scores[penalty] = float(auroc(rows.supported[learn], rows.value[learn]))
    return max(scores, key=lambda k: scores[k]), scores


def evaluate(fit: RouteFit, rows: ClaimRows, args: argparse.Namespace) -> dict[str, Any]:
    assert fit.stage is not None and fit.alpha is not None and fit.hedge_alpha is not None
    rows = rows.subset(~np.isnan(rows.value))
    test = rows.subset(fit.split == "test")
    pooled = rows.subset(np.isin(fit.split, ("threshold", "test")))
    extra = {}
    if rows.source == "halueval_qa":
        matched = np.isin(test.group, sorted(length_matched_items()))
        extra["test_length_matched"] = claim_metrics(fit.stage, test.subset(matched))
    return {
        **extra,
        "test": claim_metrics(fit.stage, test),
        "draws": guarantee_draws(
            fit.stage,
            pooled,
            alpha=fit.alpha,
            hedge_alpha=fit.hedge_alpha,
            delta=fit.delta,
            draws=args.draws,
            seed=args.seed,
        ),
    }


def artifact_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The held-out numbers the artifact records (test part), rounded."""
    keep = (
        "answers",
        "claims",
        "unsupported_share",
        "auroc",
        "auprc_unsupported",
        "ece",
        "brier",
        "kept_share",
        "unsupported_among_kept",
        "delivered_share",
        "unsupported_among_delivered",
    )
    test = result["test"]
    return {
        "test": {k: (round(test[k], 4) if isinstance(test[k], float) else test[k]) for k in keep},
        "guarantee_draws": {k: round(v, 4) for k, v in result["draws"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--qa-limit", type=int, default=None, help="first N HaluEval QA items (default all)")
    parser.add_argument("--no-write", action="store_true", help="print, write neither artifacts nor results")
    args = parser.parse_args()
    logging.getLogger("calibration.thresholds").setLevel(logging.ERROR)  # infeasible draws are counted instead
    command = "python -m benchmarks.claim_calibration" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)
    )
    costs: dict[str, Any] = {}

    started = time.perf_counter()
    grounded = grounded_rows(GROUNDED_PARAMS, limit=args.qa_limit)
    costs["grounded_seconds_per_answer"] = (time.perf_counter() - started) / (2 * len(np.unique(grounded.group)))
    grounded_fit = fit_route(grounded, "claim_support", seed=args.seed, delta=args.delta)
    print("grounded", grounded_fit.alpha, grounded_fit.info, flush=True)
    results: dict[str, Any] = {"grounded": evaluate(grounded_fit, grounded, args)}
    print(results["grounded"], flush=True)

    pairs = {}
    for kind in ("summarization", "dialogue"):
        started = time.perf_counter()
        claims = halueval_pair_claims(kind, GROUNDED_PARAMS)
        costs[f"{kind}_seconds_per_answer"] = (time.perf_counter() - started) / (2 * len(claims))
        pairs[kind] = response_scores(grounded_fit.stage, claims)

    samples = load_samples()
    penalty, penalty_scores = choose_penalty(samples, args.seed)
    started = time.perf_counter()
    closed = closed_rows(samples, penalty)
    costs["closed_scoring_seconds_per_topic"] = (time.perf_counter() - started) / max(1, len(np.unique(closed.group)))
    sampled = [row for key, row in samples.items() if key[0] == "factscore"]
    costs["closed_sampling_seconds"] = float(np.mean([row["seconds"] for row in sampled]))
    costs["closed_sampling_tokens"] = float(np.mean([row["completion_tokens"] for row in sampled]))
    closed_fit = fit_route(closed, "claim_consistency", seed=args.seed, delta=args.delta)
    closed_fit.info["penalty"] = penalty
    closed_fit.info["penalty_learn_auroc"] = {str(k): round(v, 4) for k, v in penalty_scores.items()}
    print("closed", closed_fit.alpha, closed_fit.info, flush=True)
    felm, domains = felm_rows(samples, penalty)
    if closed_fit.stage is not None:
        results["closed"] = evaluate(closed_fit, closed, args)
        results["felm"] = {
            "wk": segment_metrics(closed_fit.stage, felm.subset(domains == "wk")) if (domains == "wk").any() else None,
            "all": segment_metrics(closed_fit.stage, felm) if len(felm) else None,
            "domains": sorted(set(domains.tolist())),
        }
    else:
        clean = closed.subset(~np.isnan(closed.value))
        results["closed_raw"] = {
            "FActScore, test part": raw_metrics(clean.subset(closed_fit.split == "test")),
            "FActScore, threshold + test parts": raw_metrics(
                clean.subset(np.isin(closed_fit.split, ("threshold", "test")))
            ),
            "FELM wk (sampled prompts)": raw_metrics(felm.subset(domains == "wk")),
        }
        if set(domains.tolist()) - {"wk"}:  # other domains were sampled too
            results["closed_raw"]["FELM, all sampled prompts"] = raw_metrics(felm)
    print(results.get("closed"), results.get("felm"), results.get("closed_raw"), flush=True)
    if args.no_write:
        return

    grounded_spec = SignalSpec("claim_support", "claim_support", "free", GROUNDED_PARAMS)
    notes = [
        "Rows are claims: the stage maps one claim's value (details['claims'][i]['support'] of the claim_support "
        "signal) to P(claim supported); keep a claim when p >= hedge, keep it with a caveat when abstain <= p < "
        "hedge, drop it below abstain.",
        "Labels: HaluEval QA, each answer one claim against its knowledge (right answer supported, hallucinated "
        "not). Split over QA items (both answers of an item together).",
        "Scope: the guarantee holds for claims drawn like these. HaluEval QA's right answers are mostly short names "
        "and its hallucinated ones sentences, and on summary sentences the keep threshold kept 15% of the claims of "
        "faithful summaries (benchmarks/results/longform.md, Calibrated claims): refit on claim-labelled long "
        "answers before relying on alpha for them.",
    ]
    build_artifact(
        grounded_fit,
        grounded,
        grounded_spec,
        seed=args.seed,
        datasets={"halueval_qa": len(grounded)},
        metrics=artifact_metrics(results["grounded"]),
        notes=notes,
    ).save(GROUNDED_PATH)
    if closed_fit.stage is not None:
        closed_spec = SignalSpec(
            "claim_consistency",
            "claim_consistency",
            "full",
            {"aggregate": "mean", "missing_penalty": penalty, **SAMPLING},
        )
        notes = [
            "Rows are claims: the stage maps one claim's value (details['claims'][i]['support'] of the "
            "claim_consistency signal, 5 samples of the embedded model) to P(claim supported).",
            "Labels: FActScore sentences (unsupported = any human atomic fact NS; IR-only dropped), split over "
            "topics. Samples were drawn with the system turn 'Answer with a short factual paragraph of a few "
            "sentences.' (benchmarks.claim_samples).",
        ]
        build_artifact(
            closed_fit,
            closed,
            closed_spec,
            seed=args.seed,
            datasets={"factscore": len(closed)},
            metrics=artifact_metrics(results["closed"]),
            notes=notes,
        ).save(CLOSED_PATH)
    elif CLOSED_PATH.exists():
        CLOSED_PATH.unlink()  # an artifact from an earlier run would now claim more than the data show
    body = render_section(
        command,
        machine_description(),
        args,
        grounded_fit,
        closed_fit,
        results,
        pairs,
        costs,
        len(samples),
        grounded.subset(~np.isnan(grounded.value)),
        closed.subset(~np.isnan(closed.value)),
    )
    write_before(TITLE, body, before="Streaming")


def write_before(title: str, body: str, *, before: str, path: Path = RESULTS) -> None:
    """Replace the ``## title`` section of ``path``, or add it before ``## before`` (else at the end)."""
    text = path.read_text(encoding="utf-8")
    section = f"## {title}\n\n{body.rstrip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    elif (at := text.find(f"\n## {before}\n")) >= 0:
        text = text[: at + 1] + section + text[at + 1 :]
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
