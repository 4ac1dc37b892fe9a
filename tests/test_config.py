import pytest

from deepmt.config import PROFILES, config_from_dict, get_config


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_build_and_roundtrip(profile):
    cfg = get_config(profile)
    assert cfg.profile == profile
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.data.hr_size % cfg.data.scale == 0


def test_overrides_and_key():
    a = get_config("smoke")
    b = a.replace({"train.seed": 3}, data__scale=8)
    assert b.train.seed == 3 and b.data.scale == 8 and a.train.seed == 0
    assert a.key() != b.key() and a.key() == get_config("smoke").key()
    assert a.replace({"train.grad_clip": "none"}).train.grad_clip is None
    with pytest.raises(KeyError):
        a.replace({"train.nope": 1})


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("DEEPMT_PROFILE", "smoke")
    assert get_config().profile == "smoke"
    monkeypatch.setenv("DEEPMT_PROFILE", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        get_config()
