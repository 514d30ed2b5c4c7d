"""Tests for gate.datasets: the grader, the QAItem type, the loaders and the data directory lookup."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from estimators.text import complete_words, normalize_answer
from gate.datasets import (
    DATASET_FILES,
    DatasetFormatError,
    QAItem,
    exact_match,
    find_data_dir,
    grader_disagreement,
    is_correct,
    load_dataset,
    load_efficientqa,
    load_halueval,
    load_hotpot,
    load_nq_open,
    load_popqa,
    load_sciq,
    load_trivia,
    load_xquad,
    loaders,
)

# Row counts stated in /work/shared/datasets/README.md.
README_ROWS = {
    "trivia": 8837,
    "nq_open": 3610,
    "efficientqa": 1800,
    "popqa": 1000,
    "sciq": 1000,
    "xquad": 1190,
    "hotpot": 103,
    "halueval": 10000,
}


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _real_data_dir() -> Path:
    try:
        return find_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"shared datasets not available: {exc}")


# ------------------------------------------------------------------------------------------------ grader


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel-Tower!", "eiffeltower"),
        ("An apple a day", "apple day"),
        ("  Theater\tand   THE\nanthem ", "theater and anthem"),
        ("a", ""),
        ("...!?", ""),
        ("Café  MÜLLER", "café müller"),
        ("¿Qué?", "¿qué"),  # SQuAD strips ASCII punctuation only
        ("paris\u2028france", "paris france"),  # Unicode white space folds too
        ("U.S.A.", "usa"),
    ],
)
def test_normalize_answer_matches_squad(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("response", "answers", "expected"),
    [
        ("Paris", ["paris"], True),
        ("It is Paris, France.", ["paris"], True),
        ("It is Paris, France.", ["Paris France"], True),
        ("It is Paris, France.", ["France Paris"], False),
        ("It is Paris, France.", ["par"], False),
        ("Parisian cafés", ["paris"], False),
        ("Paris", ["Paris, France"], False),
        ("The Beatles", ["Beatles"], True),
        ("the", ["the", "", "!!"], False),  # aliases normalising to "" never match
        ("anything", [""], False),
        ("", ["paris"], False),
        ("Москва, конечно", ["Москва"], True),
        ("paris\u2028france", ["france"], True),
        ("I think it's London", ["Paris", "London"], True),
        ("Londonderry", ["London"], False),
        ("anything", [], False),
    ],
)
def test_is_correct(response: str, answers: list[str], expected: bool) -> None:
    assert is_correct(response, answers) is expected


@pytest.mark.parametrize(
    ("response", "answers", "expected"),
    [
        ("the Beatles!", ["Beatles"], True),
        ("The Beatles were", ["Beatles"], False),
        ("It is Paris", ["paris"], False),
        ("PARIS.", ["Rome", "paris"], True),
        ("the", ["a"], False),
        ("", [""], False),
    ],
)
def test_exact_match(response: str, answers: list[str], expected: bool) -> None:
    assert exact_match(response, answers) is expected


@pytest.mark.parametrize("grader", [is_correct, exact_match])
def test_graders_reject_a_bare_string_of_answers(grader: Callable[[str, Sequence[str]], bool]) -> None:
    with pytest.raises(TypeError, match="single str"):
        grader("paris", "paris")


def test_grader_disagreement_exact() -> None:
    responses = ["Paris", "It is Paris", "London", "the  paris!"]
    # is_correct: T, T, F, T; exact_match: T, F, F, T
    assert grader_disagreement(responses, [["paris"]] * 4) == pytest.approx(0.25)
    assert grader_disagreement(["x"], [["y"]]) == 0.0


def test_grader_disagreement_validates_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        grader_disagreement(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one"):
        grader_disagreement([], [])


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@given(st.text())
def test_text_is_correct_against_itself(text: str) -> None:
    assume(normalize_answer(text))
    assert is_correct(text, [text])
    assert exact_match(text, [text])


@st.composite
def _response_and_answers(draw: st.DrawFn) -> tuple[str, list[str]]:
    answers = draw(st.lists(st.text(max_size=20), max_size=4))
    pieces = st.sampled_from(answers) if answers else st.text(max_size=20)
    response = draw(st.one_of(st.text(max_size=40), pieces, st.builds("{} {}".format, st.text(), pieces)))
    return response, answers


@given(_response_and_answers())
def test_exact_match_implies_is_correct(case: tuple[str, list[str]]) -> None:
    response, answers = case
    if exact_match(response, answers):
        assert is_correct(response, answers)


# ------------------------------------------------------------------------------------------------ QAItem


def test_qaitem_is_frozen_and_hashable() -> None:
    item = QAItem(id="x-0", question="Q?", answers=["a", "b"], metadata={"s_pop": 3})  # type: ignore[arg-type]
    assert item.answers == ("a", "b")
    assert item.context == ()
    with pytest.raises(FrozenInstanceError):
        item.question = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        item.metadata["s_pop"] = 4  # type: ignore[index]
    assert hash(item) == hash(QAItem(id="x-0", question="Q?", answers=("a", "b"), metadata={"s_pop": [1]}))
    assert QAItem(id="i", question="q", answers=("a",)).metadata == {}


def test_qaitem_rejects_a_bare_string_of_answers() -> None:
    with pytest.raises(TypeError, match="answers"):
        QAItem(id="x", question="q", answers="paris")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- loaders


def test_load_trivia_handles_crlf_csv_quoting_and_unicode_line_separators(tmp_path: Path) -> None:
    lines = [
        "Plain question?\t['Answer', 'Alias']",
        'Which sport?\t"[\'Prize fight\', ""Queen\'s rules""]"',  # parses as a str unless CSV-unquoted
        'A broken\u2028question\x85 here?\t"[""Keats\' poem""]"',
        "",
        "Last?\t['x']",
    ]
    path = tmp_path / "trivia.txt"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    items = load_trivia(path)
    assert [item.id for item in items] == ["trivia-0", "trivia-1", "trivia-2", "trivia-4"]
    assert items[0].answers == ("Answer", "Alias")
    assert items[1].answers == ("Prize fight", "Queen's rules")
    assert items[2].question == "A broken\u2028question\x85 here?"
    assert items[2].answers == ("Keats' poem",)
    assert items[3].answers == ("x",)
    assert load_trivia(path, limit=2) == items[:2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("no tab here", "question<TAB>answers"),
        ("Q?\t['unclosed", "answers field"),
        ("Q?\t'just a str'", "answers"),
    ],
)
def test_load_trivia_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad_trivia.txt"
    path.write_text(f"Good?\t['a']\n{line}\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=rf"bad_trivia\.txt:2: .*{message}"):
        load_trivia(path)


def test_load_nq_open_and_efficientqa(tmp_path: Path) -> None:
    nq = _write_jsonl(
        tmp_path / "nq.jsonl", [{"question": "q1", "answer": ["a", "b"]}, {"question": "q2", "answer": ["c"]}]
    )
    items = load_nq_open(nq)
    assert [(i.id, i.question, i.answers) for i in items] == [
        ("nq_open-0", "q1", ("a", "b")),
        ("nq_open-1", "q2", ("c",)),
    ]
    assert load_nq_open(nq, limit=1) == items[:1]
    assert load_nq_open(nq, limit=0) == []
    eqa = _write_jsonl(
        tmp_path / "eqa.jsonl", [{"question": "q", "answer": ["a"], "def_correct_predictions": ["a"]}]
    )
    (item,) = load_efficientqa(eqa)
    assert item.id == "efficientqa-0"
    assert item.metadata == {"def_correct_predictions": ["a"]}


def test_load_popqa_keeps_metadata_and_own_id(tmp_path: Path) -> None:
    record = {
        "id": "test_1",
        "question": "Who?",
        "metadata": {"s_pop": 1381, "subj": "X"},
        "golden_answers": ["A", "B"],
    }
    (item,) = load_popqa(_write_jsonl(tmp_path / "popqa.jsonl", [record]))
    assert (item.id, item.answers, item.metadata["s_pop"]) == ("test_1", ("A", "B"), 1381)


def test_load_sciq(tmp_path: Path) -> None:
    rows = [
        {
            "question": "q0",
            "distractor1": "d1",
            "distractor2": "d2",
            "distractor3": "d3",
            "correct_answer": "c",
            "support": "",
        },
        {
            "question": "q1",
            "distractor1": "e1",
            "distractor2": "e2",
            "distractor3": "e3",
            "correct_answer": "k",
            "support": "S.",
        },
    ]
    path = tmp_path / "sciq.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    first, second = load_sciq(path)
    assert (first.id, first.answers, first.context) == ("sciq-0", ("c",), ())
    assert first.metadata["distractors"] == ("d1", "d2", "d3")
    assert (second.answers, second.context) == (("k",), ("S.",))


def test_load_xquad_one_item_per_question_with_deduplicated_answers(tmp_path: Path) -> None:
    paragraph = {
        "context": "The paragraph.",
        "qas": [
            {"id": "q-a", "question": "What?", "answers": [{"text": "x"}, {"text": "y"}, {"text": "x"}]},
            {"id": "q-b", "question": "Which?", "answers": [{"text": "z", "answer_start": 0}]},
        ],
    }
    path = tmp_path / "xquad.json"
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [paragraph]}]}), encoding="utf-8"
    )
    first, second = load_xquad(path)
    assert (first.id, first.answers, first.context) == ("q-a", ("x", "y"), ("The paragraph.",))
    assert (second.id, second.answers, second.metadata["title"]) == ("q-b", ("z",), "T")
    assert load_xquad(path, limit=1) == [first]


def test_load_hotpot_passages(tmp_path: Path) -> None:
    record = {
        "_id": "h1",
        "question": "Same?",
        "answer": "yes",
        "type": "comparison",
        "level": "hard",
        "supporting_facts": [["A", 0]],
        "context": [["A", ["First.", " Second."]], ["B", ["Only."]]],
    }
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    (item,) = load_hotpot(path)
    assert item.id == "h1"
    assert item.context == ("A: First. Second.", "B: Only.")
    assert item.metadata["type"] == "comparison"


def test_load_halueval(tmp_path: Path) -> None:
    record = {"knowledge": "K.", "question": "Q?", "right_answer": "R", "hallucinated_answer": "H"}
    (item,) = load_halueval(_write_jsonl(tmp_path / "halu.jsonl", [record]))
    assert (item.id, item.answers, item.context) == ("halueval-0", ("R",), ("K.",))
    assert item.metadata["hallucinated_answer"] == "H"


def test_malformed_jsonl_names_file_and_line(tmp_path: Path) -> None:
    assert issubclass(DatasetFormatError, ValueError)
    path = tmp_path / "nq.jsonl"
    path.write_text('{"question": "q", "answer": ["a"]}\n{"question": oops}\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"nq\.jsonl:2: invalid JSON"):
        load_nq_open(path)
    path.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"nq\.jsonl:1: 'answer' must be a list of strings"):
        load_nq_open(path)
    path.write_text('{"question": "q"}\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"nq\.jsonl:1: missing key 'answer'"):
        load_nq_open(path)


def test_negative_limit_is_rejected(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "nq.jsonl", [{"question": "q", "answer": ["a"]}])
    with pytest.raises(ValueError, match="limit"):
        load_nq_open(path, limit=-1)


# ----------------------------------------------------------------------------- data directory and registry


def test_find_data_dir_explicit_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path))
    assert find_data_dir() == tmp_path.resolve()
    missing = tmp_path / "missing"
    monkeypatch.setenv("GATE_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match="GATE_DATA_DIR") as info:
        find_data_dir()
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match="explicit"):
        find_data_dir(missing)


def test_find_data_dir_names_every_default_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_DATA_DIR", raising=False)
    monkeypatch.setattr(loaders, "_REPO_ROOT", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        find_data_dir()
    message = str(info.value)
    assert str(tmp_path / "shared" / "datasets") in message
    assert "repository root" in message
    assert "current directory" in message
    shared = tmp_path / "shared" / "datasets"
    shared.mkdir(parents=True)
    assert find_data_dir() == shared.resolve()


def test_load_dataset_uses_gate_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_jsonl(tmp_path / DATASET_FILES["nq_open"], [{"question": "q", "answer": ["a"]}])
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path))
    assert [item.question for item in load_dataset("nq_open")] == ["q"]
    monkeypatch.delenv("GATE_DATA_DIR")
    assert [item.question for item in load_dataset("nq_open", data_dir=tmp_path)] == ["q"]


def test_load_dataset_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown dataset 'squad'") as info:
        load_dataset("squad")
    for name in DATASET_FILES:
        assert name in str(info.value)


def test_load_dataset_accepts_a_jsonl_path(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"question": "q0", "answers": ["a", "b"]},
            {"id": "own", "question": "q1", "answer": "c", "topic": "t"},
        ],
    )
    first, second = load_dataset(str(path))
    assert (first.id, first.answers) == ("mine-0", ("a", "b"))
    assert (second.id, second.answers, second.metadata) == ("own", ("c",), {"topic": "t"})
    assert load_dataset(path, limit=1) == [first]


def test_user_jsonl_references_become_the_context(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "refs.jsonl", [{"question": "q", "answers": ["a"], "references": ["p1", "p2"]}])
    [item] = load_dataset(str(path))
    assert item.context == ("p1", "p2") and "references" not in item.metadata
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answers": ["a"], "references": "p1"}])
    with pytest.raises(DatasetFormatError, match="'references' must be a list of strings"):
        load_dataset(str(bad))


# ------------------------------------------------------------------------------------- real shared datasets


@pytest.mark.parametrize("name", sorted(DATASET_FILES))
def test_real_dataset_smoke(name: str) -> None:
    items = load_dataset(name, data_dir=_real_data_dir(), limit=50)
    assert len(items) == 50
    assert len({item.id for item in items}) == 50
    for item in items:
        assert item.question.strip()
        assert item.answers
        assert all(answer.strip() for answer in item.answers)


@pytest.mark.parametrize("name", sorted(DATASET_FILES))
def test_real_dataset_row_counts_match_readme(name: str) -> None:
    # A wrong line split (str.splitlines on U+2028/U+0085) would change the TriviaQA count.
    assert len(load_dataset(name, data_dir=_real_data_dir())) == README_ROWS[name]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("Paris", []),
        ("Paris ", ["paris"]),
        (" Paris, France", ["paris"]),
        ("The Eiffel Tower is", ["eiffel", "tower"]),
        ("It is a ", ["it", "is"]),
    ],
)
def test_complete_words_are_the_normalised_words_before_the_last_white_space(text: str, expected: list[str]) -> None:
    assert complete_words(text) == expected


@given(st.text(), st.integers(min_value=0))
def test_the_complete_words_of_a_prefix_begin_the_words_of_the_whole(text: str, cut: int) -> None:
    words = complete_words(text[: cut % (len(text) + 1)])
    assert normalize_answer(text).split()[: len(words)] == words
