"""`gate calibrate` then `gate report` then `gate ask`, on the embedded model, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from tests.test_report import PNG_SIGNATURE, _run_chromium, chromium  # noqa: F401 - chromium is a fixture

runner = CliRunner()

# Questions the 270M model mostly gets right, and ones it mostly gets wrong: a small slice that still
# has both classes in every split.
EASY = [
    ("What is the capital of France?", ["Paris"]), ("What is the capital of Italy?", ["Rome"]),
    ("What is the capital of Japan?", ["Tokyo"]), ("What is the capital of Germany?", ["Berlin"]),
    ("What is the capital of Spain?", ["Madrid"]), ("What is the capital of England?", ["London"]),
    ("What is the capital of Russia?", ["Moscow"]), ("What is the capital of Egypt?", ["Cairo"]),
    ("What is the capital of China?", ["Beijing"]), ("What is the capital of Greece?", ["Athens"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]), ("What color is the sky on a clear day?", ["blue"]),
    ("How many days are in a week?", ["seven", "7"]), ("What is the largest planet?", ["Jupiter"]),
    ("What do bees make?", ["honey"]), ("What is frozen water called?", ["ice"]),
    ("Which animal barks?", ["dog"]), ("What is the opposite of hot?", ["cold"]),
    ("What is the capital of Portugal?", ["Lisbon"]), ("What is the capital of Austria?", ["Vienna"]),
    ("What is the capital of Ireland?", ["Dublin"]), ("What is the capital of Norway?", ["Oslo"]),
    ("How many legs does a dog have?", ["four", "4"]), ("What is the capital of Canada?", ["Ottawa"]),
]
HARD = [
    ("Who was the 1923 winner of the Dutch national chess championship?", ["Max Euwe"]),
    ("What is the atomic number of hafnium?", ["72"]),
    ("Who composed the opera Der Vampyr?", ["Heinrich Marschner"]),
    ("In which year was the Treaty of Nerchinsk signed?", ["1689"]),
    ("Who was the first Prime Minister of Tuvalu?", ["Toaripi Lauti"]),
    ("What is the capital of the Comoros?", ["Moroni"]),
    ("Who painted The Hay Wain?", ["John Constable"]),
    ("What is the name of the ship on which Darwin sailed?", ["Beagle"]),
    ("Who directed the 1927 film Metropolis?", ["Fritz Lang"]),
    ("Which element has the symbol W?", ["tungsten"]),
    ("Who wrote the novel The Leopard?", ["Giuseppe Tomasi di Lampedusa", "Lampedusa"]),
    ("What is the capital of Burkina Faso?", ["Ouagadougou"]),
    ("Who discovered the element ruthenium?", ["Karl Ernst Claus"]),
    ("In which city was the painter Egon Schiele born?", ["Tulln"]),
    ("Who was the Roman emperor in AD 238 for 22 days?", ["Gordian I", "Gordian II"]),
    ("What is the highest mountain in Slovenia?", ["Triglav"]),
    ("Who won the 1931 Tour de France?", ["Antonin Magne"]),
    ("What is the capital of Vanuatu?", ["Port Vila"]),
    ("Who wrote the play The Government Inspector?", ["Nikolai Gogol", "Gogol"]),
    ("What is the largest moon of Neptune?", ["Triton"]),
    ("Who founded the city of Ceuta?", ["Carthaginians"]),
    ("Which river flows through Ljubljana?", ["Ljubljanica"]),
    ("Who was the architect of the Palace of Westminster?", ["Charles Barry"]),
    ("What is the capital of Kiribati?", ["Tarawa", "South Tarawa"]),
]


@pytest.mark.integration
def test_calibrate_report_and_ask_on_the_embedded_model(tmp_path: Path, chromium: str, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("GATE_CONFIG", raising=False)
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answers": a}) + "\n"
                            for i, (q, a) in enumerate(EASY + HARD)))
    artifact = tmp_path / "artifact.json"
    args = ["calibrate", "--dataset", str(data), "--out", str(artifact), "--signals", "logprob_min,p_true",
            "--answer-level", "0.6", "--hedge-level", "0.4", "--calibrator", "platt",
            "--fusion", "logistic"]  # both signals read, so score below computes p_true
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {artifact}" in result.output and "fused AUROC" in result.output
    cache = tmp_path / "artifact.signals.jsonl"
    assert len(cache.read_text().splitlines()) == 1 + len(EASY) + len(HARD)  # header + one row per question

    first_stages = json.loads(artifact.read_text())["stages"]
    again = runner.invoke(app, args)  # resumes from the cache: nothing is recomputed, the fit is the same
    assert again.exit_code == 0, again.output
    assert len(cache.read_text().splitlines()) == 1 + len(EASY) + len(HARD)
    assert json.loads(artifact.read_text())["stages"] == first_stages

    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(artifact), "--out", str(out), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rows"] > 0 and "logprob_min" in metrics["signals"]
    shot = tmp_path / "shot.png"
    _run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,3000",
                  (out / "report.html").resolve().as_uri())
    assert shot.read_bytes().startswith(PNG_SIGNATURE)

    monkeypatch.setenv("GATE_ARTIFACT", str(artifact))
    monkeypatch.setenv("GATE_SIGNALS", '["logprob_min", "p_true"]')
    asked = runner.invoke(app, ["ask", "What is the capital of France?", "--json"])
    assert asked.exit_code == 0, asked.output
    assessment = json.loads(asked.output)
    assert assessment["calibration"].startswith("local/gemma-3-270m@v1:")
    assert "Paris" in assessment["answer"]

    logged = tmp_path / "log.jsonl"
    logged.write_text(
        json.dumps({"id": "r1", "question": "What is the capital of Italy?", "response": "Rome"}) + "\n"
        + "{broken\n"
        + json.dumps({"id": "r2", "question": "What is the capital of Italy?", "response": "Madrid"}) + "\n"
    )
    scored = runner.invoke(app, ["score", str(logged), "--out", str(tmp_path / "scored.jsonl")])
    assert scored.exit_code == 0, scored.output
    assert "scored 2 line(s)" in scored.output and "line 2: not JSON" in scored.output
    rows = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["r1", "r2"]
    assert all(set(row["gate"]["signals"]) == {"p_true"} for row in rows)  # no log-probs given: no token prob

    evaluated = runner.invoke(
        app, ["evaluate", "--dataset", str(data), "--limit", "20", "--out", str(tmp_path / "eval"), "--resamples", "50"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "thresholds still meet the target" in evaluated.output
    assert "Drift" in (tmp_path / "eval" / "report.md").read_text()

    monkeypatch.setenv("GATE_SIGNALS", '["logprob_min"]')
    refused = runner.invoke(app, ["ask", "What is the capital of France?"])
    assert refused.exit_code == 2 and "other settings" in refused.output
