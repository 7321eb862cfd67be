"""The user-facing errors survive a trip between processes (Ray workers, cluster tasks)."""

from __future__ import annotations

import pickle

import pytest

from recbole_mmkd.carry import CarryError
from recbole_mmkd.errors import ConfigError, DataError, MMKDError
from recbole_mmkd.result import ResultError


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("--set", "kd_weight", "-1 is negative", "give a weight >= 0"),
        DataError("data/x.inter", "userID", "missing", "name the column"),
        ResultError("results/x/result.json", "unreadable"),
        CarryError("no teacher artefacts"),
        MMKDError("plain"),
    ],
)
def test_errors_pickle_to_the_same_error(error):
    error.extra = "kept"
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error) and back.__dict__ == error.__dict__
