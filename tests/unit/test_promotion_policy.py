"""The promotion decision as a pure function: NaN never wins, errors hold, the policy applies."""

import math

import pytest

from flows.promotion import HELD, PROMOTED, REJECTED, Policy, decide
from flows.steps import Evaluation


def ev(value, champion=0.8, baseline=0.5, version="3", error="", greater=True):
    return Evaluation(
        "accuracy",
        greater,
        {"accuracy": value},
        {"accuracy": baseline},
        champion_version=version,
        champion_value=champion,
        champion_how="recorded",
        champion_error=error,
    )


@pytest.mark.parametrize(
    ("evaluation", "policy", "outcome", "words"),
    [
        (ev(0.9), Policy(), PROMOTED, "beats champion v3"),
        (ev(0.8), Policy(), REJECTED, "does not beat"),  # strictly better is the default
        (ev(0.85), Policy(min_delta=0.1), REJECTED, "by more than 0.1"),
        (ev(0.95), Policy(min_delta=0.1), PROMOTED, "beats"),
        (ev(0.4, champion=None, version=None), Policy(must_beat_baseline=True), REJECTED, "baseline"),
        (ev(0.4, champion=None, version=None), Policy(), PROMOTED, "no champion yet"),
        (ev(math.nan), Policy(), HELD, "not a number"),
        (ev(math.inf, champion=None, version=None), Policy(), HELD, "not a number"),
        (ev(0.9, champion=math.nan), Policy(), HELD, "measured nan"),
        (ev(0.9, champion=None, error="cannot be evaluated on this data: shape"), Policy(), HELD, "mlzoo promote t 7"),
        (ev(0.1, champion=0.2, greater=False), Policy(), PROMOTED, "beats"),  # lower is better
    ],
)
def test_decide(evaluation, policy, outcome, words):
    got, reason = decide(evaluation, policy, "t", "7")
    assert got == outcome and words in reason


def test_policy_refuses_unknown_keys():
    assert Policy.from_params({"min_delta": "0.02"}) == Policy(0.02, False)
    with pytest.raises(ValueError, match="min_detla"):
        Policy.from_params({"min_detla": 0.1})
