from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emu.config.kinds import build_selector
from emu.model.selectors import LabelSelector, Requirement

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "selector, labels, want",
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchLabels": {"a": "1"}}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "3"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        (
            {"matchLabels": {"x": "1"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]},
            {"x": "1"},
            False,
        ),
    ],
)
def test_selector_semantics(selector: dict, labels: dict, want: bool) -> None:  # type: ignore[type-arg]
    assert build_selector(selector).matches(labels) is want


keys = st.sampled_from(["a", "b", "c"])
vals = st.sampled_from(["1", "2", "3"])


@given(st.dictionaries(keys, vals), st.dictionaries(keys, vals))
def test_match_labels_is_subset_test(sel: dict[str, str], labels: dict[str, str]) -> None:
    assert LabelSelector(sel).matches(labels) == (sel.items() <= labels.items())


@given(keys, st.lists(vals, min_size=1), st.dictionaries(keys, vals))
def test_in_and_notin_are_complements_when_key_present(key: str, values: list[str], labels: dict[str, str]) -> None:
    inn = Requirement(key, "In", tuple(values)).matches(labels)
    notin = Requirement(key, "NotIn", tuple(values)).matches(labels)
    if key in labels:
        assert inn != notin
    else:
        assert not inn and notin


def test_selector_string() -> None:
    s = build_selector({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})
    assert str(s) == "app=web,tier in (a,b)"
