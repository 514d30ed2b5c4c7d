"""The estimator registry: names, lazy classes, clear errors."""

import subprocess
import sys

import pytest

import estimators
from estimators import ESTIMATOR_NAMES, estimator_class, make_estimator


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_each_registered_class_carries_its_name(name):
    assert estimator_class(name).name == name
    assert make_estimator(name).name == name


def test_unknown_name_lists_the_valid_ones():
    # The message lists the names sorted, whatever the registration order: with the claim estimators
    # registered, the list starts at 'claim_consistency', not 'consistency', so the whole list is checked.
    with pytest.raises(ValueError) as raised:
        make_estimator("nope")
    assert str(raised.value) == f"unknown estimator 'nope'; valid: {sorted(ESTIMATOR_NAMES)}"
    assert {"claim_support", "claim_consistency", "consistency"} <= set(ESTIMATOR_NAMES)


def test_classes_are_importable_from_the_package():
    from estimators import ClaimConsistency, ClaimSupport, Consistency, Pace  # noqa: F401 -- the import is the test

    with pytest.raises(AttributeError):
        estimators.NotAnEstimator  # noqa: B018


def test_core_types_import_without_scipy():
    code = "import sys, estimators.base, estimators; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
