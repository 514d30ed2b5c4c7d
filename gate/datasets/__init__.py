"""Development QA datasets (loaders) and the grader every correctness label uses (grading)."""

from gate.datasets.grading import exact_match, grader_disagreement, is_correct
from gate.datasets.loaders import (
    DATA_DIR_ENV,
    DATASET_FILES,
    DatasetFormatError,
    QAItem,
    find_data_dir,
    load_dataset,
    load_efficientqa,
    load_halueval,
    load_hotpot,
    load_nq_open,
    load_popqa,
    load_qa_jsonl,
    load_sciq,
    load_trivia,
    load_xquad,
)

__all__ = [
    "DATASET_FILES",
    "DATA_DIR_ENV",
    "DatasetFormatError",
    "QAItem",
    "exact_match",
    "find_data_dir",
    "grader_disagreement",
    "is_correct",
    "load_dataset",
    "load_efficientqa",
    "load_halueval",
    "load_hotpot",
    "load_nq_open",
    "load_popqa",
    "load_qa_jsonl",
    "load_sciq",
    "load_trivia",
    "load_xquad",
]
