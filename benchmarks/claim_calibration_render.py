"""The Markdown of the "Calibrated claims" section, from what ``benchmarks.claim_calibration`` measured."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.claim_calibration_eval import PAIR_METRICS, fmt, pair_metric
from benchmarks.claim_calibration_fit import ALPHAS, HEDGE_MARGIN, MIN_KEPT, RouteFit
from calibration.thresholds import NEVER


def _threshold(value: float) -> str:
    return "never (infeasible)" if value >= NEVER else f"{value:.4f}"


def _split_table(fit: RouteFit, groups: np.ndarray, supported: np.ndarray, unit: str) -> list[str]:
    lines = [f"| part | {unit} | claims | unsupported share |", "|---|---|---|---|"]
    for name in ("fit", "calibrate", "threshold", "test"):
        part = fit.split == name
        lines.append(
            f"| {name} | {len(np.unique(groups[part]))} | {int(part.sum())} | {1 - supported[part].mean():.3f} |"
        )
    return lines


def _fit_lines(fit: RouteFit) -> list[str]:
    assert fit.stage is not None
    info = fit.info["fit"]
    losses = ", ".join(f"{k} {v:.4f}" for k, v in info["calibrator_cv_log_loss"].items())
    t = fit.stage.thresholds
    return [
        f"Fitted on fit + calibrate: fusion `{info['fusion']}` (chosen by cross-validated AUROC among "
        f"{len(info['fusion_candidates'])} one-signal candidates), calibrator `{info['calibrator']}` (the existing "
        f"rule: the order-preserving kind with the lowest 5-fold log-loss; all kinds: {losses}). Out-of-fold AUROC "
        f"on these rows {fmt(fit.info['oof_auroc'], tuple(fit.info['oof_auroc_ci']))}.  ",
        f"Target chosen on the learning rows: alpha = **{fit.alpha}** (smallest of {list(ALPHAS)} for which "
        f"Learn-then-Test on a threshold-part-sized subsample of them keeps at least {MIN_KEPT:.0%} of claims), "
        f"hedge alpha = {fit.hedge_alpha} (alpha + {HEDGE_MARGIN}), delta = **{fit.delta}**.  ",
        f"Thresholds from the threshold part: keep when p >= {_threshold(t.hedge)}, keep with a caveat when "
        f"p >= {_threshold(t.abstain)}, drop below.  ",
        f"- {t.answer_result.message}",
        f"- {t.hedge_result.message}",
    ]


def _test_table(result: dict[str, Any], alpha: float, hedge_alpha: float, delta: float) -> list[str]:
    test = result["test"]
    rows = [
        ("AUROC (supported vs not)", "auroc"),
        (f"AUC-PR of unsupported (chance {test['unsupported_share']:.3f})", "auprc_unsupported"),
        ("ECE (10 equal-width bins)", "ece"),
        ("Brier score", "brier"),
        ("share of claims kept (p >= hedge)", "kept_share"),
        ("balanced accuracy of keeping (supported kept, unsupported not)", "balanced_accuracy_kept"),
        (f"unsupported share among kept (alpha {alpha})", "unsupported_among_kept"),
        ("share kept or kept with a caveat (p >= abstain)", "delivered_share"),
        (f"unsupported share among those (hedge alpha {hedge_alpha})", "unsupported_among_delivered"),
    ]
    lines = ["| metric (test part) | value [95% CI over answers] |", "|---|---|"]
    if "length_auroc" in test:
        rows.insert(1, ("AUROC of the baseline 'the shorter claim is supported' (no signal)", "length_auroc"))
    lines += [f"| {label} | {fmt(test[key], test[f'{key}_ci'])} |" for label, key in rows]
    lines += [
        "",
        "Reliability of the calibrated claim probability on the test part (10 equal-width bins, empty bins left out):",
        "",
        "| mean p | supported share | claims |",
        "|---|---|---|",
    ]
    lines += [f"| {b['mean_p']:.3f} | {b['supported']:.3f} | {b['claims']} |" for b in test["reliability"]]
    if "test_length_matched" in result:
        m = result["test_length_matched"]
        lines += [
            "",
            f"The same on the {m['answers']} test items whose two answers differ by at most 2 words ({m['claims']} "
            "claims; the form confound is weaker there, and they are a subpopulation, so the guarantee, which is "
            "over the whole distribution, does not promise anything on them):",
            "",
            "| metric (length-matched test items) | value [95% CI over answers] |",
            "|---|---|",
        ]
        for label, key in (
            ("AUROC (supported vs not)", "auroc"),
            ("AUROC of 'the shorter claim is supported'", "length_auroc"),
            ("ECE", "ece"),
            ("share of claims kept", "kept_share"),
            (f"unsupported share among kept (alpha {alpha})", "unsupported_among_kept"),
        ):
            lines.append(f"| {label} | {fmt(m[key], m[f'{key}_ci'])} |")
    draws = result["draws"]
    lines += [
        "",
        f"Guarantee over calibration draws: the threshold and test parts pooled, split {draws['draws']} times at "
        "random into halves by answer; Learn-then-Test re-run on one half (fusion and calibrator kept), the kept "
        f"claims judged on the other. Realised unsupported share among kept > alpha in **{draws['exceeded']:.3f}** "
        f"of draws (the guarantee allows delta = {delta}, up to the noise of a finite judging half); "
        "infeasible (nothing kept) in "
        f"{draws['infeasible']:.3f}; mean share kept {fmt(draws['mean_kept'])}; realised unsupported share among "
        f"kept: mean {fmt(draws['mean_unsupported_among_kept'])}, max {fmt(draws['max_unsupported_among_kept'])}.",
    ]
    return lines


def _pairs_table(pairs: dict[str, dict[str, np.ndarray]]) -> list[str]:
    lines = [
        "| dataset | response score | pairs | pairwise accuracy | AUROC | mean share of claims kept: faithful / "
        "hallucinated |",
        "|---|---|---|---|---|---|",
    ]
    for kind, scores in pairs.items():
        kept = scores["kept share"]
        kept_text = f"{np.nanmean(kept[:, 0]):.3f} / {np.nanmean(kept[:, 1]):.3f}"
        for name in ("min p", "mean p", "raw mean support"):
            cells = [fmt(*pair_metric(metric, scores[name])) for metric in PAIR_METRICS.values()]
            lines.append(
                f"| {kind} | {name} | {len(scores[name])} | {' | '.join(cells)} | "
                f"{kept_text if name == 'min p' else ''} |"
            )
    return lines


def _felm_lines(felm: dict[str, Any]) -> list[str]:
    lines = [
        "| FELM subset | answers | segments | false share | AUROC (segment true vs false) | AUC-PR of false "
        "| response AUROC (all true, by min p) | false share among kept | kept share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("wk", "all"):
        m = felm.get(name)
        if m:
            lines.append(
                f"| {name} | {m['answers']} | {m['claims']} | {m['unsupported_share']:.3f} | "
                f"{fmt(m['auroc'], m['auroc_ci'])} | {fmt(m['auprc_unsupported'], m['auprc_unsupported_ci'])} | "
                f"{fmt(m['response_auroc'])} | {fmt(m['unsupported_among_kept'])} | {fmt(m['kept_share'])} |"
            )
    return lines


def _raw_lines(raw: dict[str, Any]) -> list[str]:
    lines = [
        "| rows | groups (FActScore topics, FELM answers) | claims | unsupported share | AUROC of the raw value "
        "[95% CI] | AUC-PR of unsupported [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in raw.items():
        if m:
            lines.append(
                f"| {name} | {m['answers']} | {m['claims']} | {m['unsupported_share']:.3f} | "
                f"{fmt(m['auroc'], m['auroc_ci'])} | {fmt(m['auprc_unsupported'], m['auprc_unsupported_ci'])} |"
            )
    return lines


def render_section(
    command: str,
    machine: str,
    args: argparse.Namespace,
    grounded: RouteFit,
    closed: RouteFit,
    results: dict[str, Any],
    pairs: dict[str, dict[str, np.ndarray]],
    costs: dict[str, float],
    n_sampled: int,
    grounded_rows: Any,
    closed_rows: Any,
) -> str:
    """The section body."""
    lines = [
        f"Command: `{command}`, after the closed-book route's samples: `python -m benchmarks.claim_samples "
        "--minutes 32` (all 183 FActScore topics, then FELM) and `python -m benchmarks.claim_samples --source felm "
        "--minutes 10` (the rest of FELM's wk prompts and a few others), about 42 minutes of sampling.  ",
        f"Machine: {machine}; a shared, busy 2-core CPU (other jobs ran at the same time), so seconds are "
        "indicative.  ",
        f"Seeds: split {args.seed} (hash of the answer id, `calibration.fitting.split_rows`, 40/20/20/20 "
        f"fit/calibrate/threshold/test), bootstrap 2000 resamples over answers (seed 0), guarantee draws "
        f"{args.draws} (seed {args.seed}).  ",
        "Bound: Learn-then-Test (Angelopoulos et al.) with Hoeffding-Bentkus p-values (the minimum of the "
        "Hoeffding tail and e times the binomial tail; Bates et al.), fixed-sequence testing from strict to "
        "permissive (`calibration.risk_control.learn_then_test`): with probability at least 1 - delta over the "
        "threshold part, the unsupported share among kept claims (p >= hedge) is at most alpha; the same for the "
        "kept-or-caveated claims (p >= abstain) at the hedge alpha (jointly 1 - 2 delta by the union bound). "
        "The claims of one answer are not independent; the split and every interval are over answers, but the "
        "bound itself counts claims as exchangeable draws (each HaluEval QA answer is one claim, so there it is "
        "exact per answer; for FActScore sentences it is an approximation).",
        "",
        "### Grounded route: `claim_support` on HaluEval QA",
        "",
        "Rows: every HaluEval QA item gives two answers, each one claim scored against the item's knowledge by "
        f"`ClaimSupport({', '.join(f'{k}={v!r}' for k, v in {'aggregate': 'mean', 'missing_penalty': 0.25}.items())})`"
        " (the variant chosen on the Grounding section's dev pairs, no embedder, no LLM call); the right answer "
        "is supported, the hallucinated one is not. Both answers of an item go to the same part. Artifact: "
        "`gate/data/gemma-3-270m.claims-grounded.calibration.json`.",
        "",
        *_split_table(grounded, grounded_rows.group, grounded_rows.supported, "QA items"),
        "",
        *_fit_lines(grounded),
        "",
        *_test_table(results["grounded"], grounded.alpha, grounded.hedge_alpha, grounded.delta),
        "",
        "Response level, HaluEval summarization and dialogue (the Grounding section's 300 test pairs per set: "
        "nothing was fitted on these sets, and the variant was chosen on their separate dev pairs). Each response "
        "is split into claims, each claim gets the grounded stage's calibrated probability, and the response "
        "score is their minimum or mean; 95% bootstrap over pairs. The raw mean support is the uncalibrated "
        "signal's own confidence (the Grounding section's row). The calibrator is monotone, so min p ranks as the "
        "raw minimum does.",
        "",
        *_pairs_table(pairs),
        "",
        "### Closed-book route: `claim_consistency` against Gemma 3 270M samples on FActScore",
        "",
        f"Samples: {n_sampled} prompts sampled by `benchmarks.claim_samples` (5 samples at T=1 in one batched call, "
        "at most 128 tokens each, seed 0, the system turn 'Answer with a short factual paragraph of a few "
        "sentences.'), FActScore topics first in seeded order, then FELM world-knowledge prompts, then the other "
        "FELM prompts. Rows: FActScore sentences of the sampled topics (the three models' biographies), unsupported "
        "when any human atomic fact is NS, IR-only sentences dropped; the value is the sentence's mean support "
        f"over the samples (word overlap, missing penalty {closed.info.get('penalty')} chosen on the learning rows "
        f"by AUROC: {closed.info.get('penalty_learn_auroc')}). Split over topics.",
        "",
        *_split_table(closed, closed_rows.group, closed_rows.supported, "topics"),
        "",
    ]
    if closed.stage is None:
        lines += [
            "Informative? Out-of-fold AUROC on the learning rows "
            f"{fmt(closed.info['oof_auroc'], tuple(closed.info['oof_auroc_ci']))}; alpha supported by the learning "
            f"rows: {closed.info.get('alpha_supported_by_learning_rows')}. By the rule fixed before fitting, **no "
            f"closed-book artifact is written**: {closed.info['not_shipped']}. A calibrated probability from this "
            "signal stays near the base rate, and no threshold on it keeps claims with a useful guarantee. For the "
            "record, the raw value on the parts nothing was chosen on, and on FELM:",
            "",
            *_raw_lines(results["closed_raw"]),
        ]
    else:
        lines += [
            *_fit_lines(closed),
            "",
            *_test_table(results["closed"], closed.alpha, closed.hedge_alpha, closed.delta),
            "",
            "FELM segments of the sampled prompts (evaluation only):",
            "",
            *_felm_lines(results["felm"]),
        ]
    lines += [
        "",
        "### Cost per answer",
        "",
        "| route | LLM calls | seconds (mean) |",
        "|---|---|---|",
        f"| grounded, HaluEval QA answer (one claim) | 0 | {costs['grounded_seconds_per_answer']:.4f} |",
        f"| grounded, HaluEval summary | 0 | {costs['summarization_seconds_per_answer']:.4f} |",
        f"| grounded, HaluEval dialogue response | 0 | {costs['dialogue_seconds_per_answer']:.4f} |",
        f"| closed-book, FActScore topic: 5 samples in one batched call | 1 | {costs['closed_sampling_seconds']:.2f} "
        f"sampling ({costs['closed_sampling_tokens']:.0f} completion tokens for the 5) + "
        f"{costs['closed_scoring_seconds_per_topic']:.4f} scoring the topic's sentences |",
        "",
        "Calibration and the threshold add one logistic and one calibrator evaluation per claim (microseconds). "
        "Sampling seconds were measured while other jobs shared the two cores.",
    ]
    return "\n".join(lines)
