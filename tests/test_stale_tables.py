"""Main's tables are made by main's code: every cache entry the notebooks need under ``quick``, as main's code keys
it, must be one the committed tables were computed from (``results/timing/grid_compute.csv``, written from the cache
of the last complete ``./run_all.sh``). Keys only: no training. A default that changes cache keys, committed without
a regenerated grid, fails here."""

import pandas as pd
import pytest

from deepmt.bench.plan_inventory import TABLE_ENTRIES, load_inventory, needed_entries, stale_entries
from deepmt.config import KEY_NEUTRAL_DEFAULTS, PROFILE_OVERRIDES, get_config
from deepmt.grid_log import flat_fields
from deepmt.utils import repo_root


def _made_from() -> set[str]:
    return set(pd.read_csv(repo_root() / TABLE_ENTRIES)["entry"])


def test_committed_tables_rest_on_entries_mains_code_still_makes():
    stale = stale_entries(load_inventory(), _made_from(), "quick")
    listing = "; ".join(f"{name} (notebooks {', '.join(nbs)})" for name, nbs in sorted(stale.items())[:5])
    assert not stale, (
        f"{len(stale)} cache entries the notebooks need under quick are not those the committed tables were made "
        f"from ({TABLE_ENTRIES}): {listing}. A key-changing default changed: regenerate every table with "
        "./run_all.sh from an empty cache, or make the change key-neutral (deepmt.config.KEY_NEUTRAL_DEFAULTS)")


def test_the_check_fails_when_a_key_changing_default_changes(monkeypatch):
    records = load_inventory()
    before = needed_entries(records, "quick")
    assert len(before) >= 100  # the whole grid, not a fragment
    monkeypatch.setitem(PROFILE_OVERRIDES, "quick", {**PROFILE_OVERRIDES["quick"], "train.lr": 1e-3})
    stale = stale_entries(records, _made_from(), "quick")
    assert len(stale) == len(before)  # every entry's key moved


#: the key-neutral settings the quick profile trains at their neutral value (the others are part of its keys)
_UNSET_NEUTRAL = [{k: v} for k, v in KEY_NEUTRAL_DEFAULTS.items() if flat_fields(get_config("quick")).get(k) == v]


@pytest.mark.parametrize("setting", _UNSET_NEUTRAL, ids=[next(iter(s)) for s in _UNSET_NEUTRAL])
def test_key_neutral_settings_at_their_neutral_value_keep_the_tables(monkeypatch, setting):
    monkeypatch.setitem(PROFILE_OVERRIDES, "quick", {**PROFILE_OVERRIDES["quick"], **setting})
    assert not stale_entries(load_inventory(), _made_from(), "quick")
