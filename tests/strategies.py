"""Hypothesis strategies the fuzz tests share: any JSON value built from a set of scalars."""

from __future__ import annotations

from hypothesis import strategies as st


def json_values(scalars: st.SearchStrategy) -> st.SearchStrategy:
    """Scalars, and small lists and objects of them nested a few levels."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )


def scalars(largest_int: int, chosen: list[float]) -> st.SearchStrategy:
    """Every kind of JSON scalar: null, bools, integers up to ``largest_int``, any float (NaN and
    infinities too), a few ``chosen`` values that sit on a reader's edges, short strings."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-largest_int, max_value=largest_int),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(chosen),
        st.text(max_size=8),
    )
