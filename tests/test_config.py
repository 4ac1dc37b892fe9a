import dataclasses

import pytest

from deepmt.config import PROFILE_OVERRIDES, PROFILES, STORED_DEFAULTS, Config, config_from_dict, get_config, method_config
from deepmt.errors import SettingError


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_build_and_roundtrip(profile):
    cfg = get_config(profile)
    assert cfg.profile == profile
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.data.hr_size % cfg.data.scale == 0


#: The cache keys of the three profiles' runs (of a method without its own epochs in
#: ``train.epochs_by_method``, e.g. the seg+grade net foo_mt). A refactoring of the config must leave them as they
#: are; a new field or a changed setting changes them on purpose (every cached run is then retrained): update them here.
GOLDEN_KEYS = {"smoke": "6f6a7c15a7d3023d", "quick": "9f46b26ac9de1fc0", "paper": "166cc8e72c3f1579"}
#: DeepMT-DR's quick key: its stage 2 has its own epochs there (``deepmt_dr.stage2``)
GOLDEN_DEEPMT_DR_QUICK = "795f3b1a5c4f4dc0"
#: the quick profile's key with every key-neutral field at its neutral value (the fields are then not hashed)
NEUTRAL_QUICK_KEY = "fe6d4becc83d51a1"


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_keys_are_golden(profile):
    assert method_config(get_config(profile), "foo_mt").key() == GOLDEN_KEYS[profile]
    assert method_config(get_config(profile), "deepmt_dr").key() == (
        GOLDEN_DEEPMT_DR_QUICK if profile == "quick" else GOLDEN_KEYS[profile])


def test_epochs_by_method_changes_only_the_named_methods_keys():
    """The quick profile gives two baselines more epochs and the stage 2 of DeepMT-DR and its twin their own: their
    runs are those of ``epochs_single`` (``epochs_stage2``) at that value, every other method keeps the key it had
    before the mapping existed (its cache entries stay valid)."""
    cfg = get_config("quick")
    assert cfg.train.epochs_by_method == {"grader_lr": 72, "unet_bicubic": 72, "deepmt_dr.stage2": 12,
                                          "deepmt_dr_noisr.stage2": 36}
    for name in ("isr", "foo_mt", "foo_mt_hr", "grader_hr", "two_stage"):
        assert method_config(cfg, name).key() == GOLDEN_KEYS["quick"], name
    for name, epochs in (("deepmt_dr", 12), ("deepmt_dr_noisr", 36)):
        assert method_config(cfg, name) == cfg.replace({"train.epochs_by_method": {}, "train.epochs_stage2": epochs})
    longer = method_config(cfg, "grader_lr")
    assert longer.train.epochs_single == 72 and longer.train.epochs_by_method == {}
    assert longer == cfg.replace({"train.epochs_by_method": {}, "train.epochs_single": 72})
    assert longer.key() != GOLDEN_KEYS["quick"] and method_config(longer, "grader_lr") == longer  # idempotent
    none = cfg.replace({"train.epochs_by_method": {}})
    assert method_config(none, "grader_lr") is none and none.key() == GOLDEN_KEYS["quick"]


def test_epochs_by_method_with_a_stage_changes_that_stage_of_that_method_only():
    """``METHOD.STAGE`` gives one stage of a method trained by stage its own epochs: its run is the one
    ``train.epochs_STAGE`` at that value would make; every other method (the other DeepMT-DR variant included)
    keeps its key."""
    cfg = get_config("quick").replace({"train.epochs_by_method": {"deepmt_dr.stage1b": 72, "isr": 5}})
    longer = method_config(cfg, "deepmt_dr")
    assert longer.train.epochs_stage1b == 72 and longer.train.epochs_by_method == {}
    assert longer.train.epochs_stage1a == cfg.train.epochs_stage1a and longer.train.epochs_single == cfg.train.epochs_single
    assert longer == cfg.replace({"train.epochs_by_method": {}, "train.epochs_stage1b": 72})
    plain = cfg.replace({"train.epochs_by_method": {}})
    assert method_config(cfg, "deepmt_dr_noisr").key() == plain.key()
    assert method_config(cfg, "unet_hr").key() == plain.key()
    assert method_config(cfg, "isr") == plain.replace({"train.epochs_single": 5})
    with pytest.raises(SettingError, match=r"'deepmt_dr\.stage9': no stage 'stage9'"):  # not a field to set
        method_config(cfg.replace({"train.epochs_by_method": {"deepmt_dr.stage9": 3}}), "deepmt_dr")


@pytest.mark.parametrize("mapping, words", [
    ({"deepmt_dr.stage3": 2}, r"'deepmt_dr\.stage3' names stage 'stage3'; 'deepmt_dr' trains by stage, so name one of "
                              r"deepmt_dr\.stage1a, deepmt_dr\.stage1b, deepmt_dr\.stage2"),
    ({"deepmt_dr": 2}, r"'deepmt_dr' names no stage; 'deepmt_dr' trains by stage"),
    ({"unet_hr.stage1b": 2}, r"'unet_hr\.stage1b': 'unet_hr' trains in one stage \(train\.epochs_single\)"),
    ({"deepmt_drr.stage1b": 2}, r"unknown method 'deepmt_drr'; did you mean 'deepmt_dr'\?"),
])
def test_bad_stage_entries_of_epochs_by_method_say_what_to_write(mapping, words):
    from deepmt.models.methods import check_epochs_by_method

    with pytest.raises(SettingError, match=words):
        check_epochs_by_method(mapping)


@pytest.mark.parametrize("text, expected", [
    ("foo_mt:72,grader_lr:10", {"foo_mt": 72, "grader_lr": 10}),
    (" foo_mt : 5 ", {"foo_mt": 5}),
    ('{"unet_bicubic": 3}', {"unet_bicubic": 3}),
    ({"isr": "4"}, {"isr": 4}),
    ("", {}),
    ("{}", {}),
])
def test_epochs_by_method_is_parsed_from_text_or_a_mapping(text, expected):
    assert get_config("smoke", {"train.epochs_by_method": text}).train.epochs_by_method == expected


@pytest.mark.parametrize("text", ["foo_mt", "foo_mt:0", "foo_mt:2.5", "foo_mt:x", "a:1,a:2", '{"a": [1]}', "[1, 2]", 3])
def test_bad_epochs_by_method_names_what_is_allowed(text):
    with pytest.raises(SettingError, match=r"train\.epochs_by_method=.*name:value pairs.*integer >= 1"):
        get_config("smoke", {"train.epochs_by_method": text})


def test_defaults_are_the_paper_profile():
    """``paper`` overrides nothing, the plain dataclasses are it, and they hold the paper's sizes."""
    assert PROFILE_OVERRIDES["paper"] == {} and Config() == get_config("paper")
    cfg = Config()
    assert (cfg.data.hr_size, cfg.data.lr_size, cfg.data.crop_size) == (1024, 256, 256)
    assert (cfg.model.isr.channels, cfg.model.isr.n_resblocks) == (32, 5)
    assert (cfg.model.seg.base_channels, cfg.model.seg.levels, cfg.model.grader.width) == (64, 5, 64)
    defaults = Config().to_dict()
    for profile, overrides in PROFILE_OVERRIDES.items():  # each dict holds exactly what differs from the defaults
        assert all(_dotted(defaults, k) != v for k, v in overrides.items()), profile
        assert get_config(profile) == Config(profile=profile).replace(overrides)


def _dotted(d, key):
    for part in key.split("."):
        d = d[part]
    return d


def test_stored_config_missing_fields_loads_as_it_was_made():
    """A config.json written before a field existed gets the value the code then used, not today's default."""
    stored = get_config("quick").to_dict()
    for key in STORED_DEFAULTS:
        section = stored
        *parents, last = key.split(".")
        for part in parents:
            section = section[part]
        del section[last]
    stored["train"].pop("threads")  # a field whose default never changed: today's default
    cfg = config_from_dict(stored)
    assert (cfg.profile, cfg.data.hr_size, cfg.data.crop_size, cfg.train.lr, cfg.train.batch_size) == ("quick", 128, None, 2e-3, 32)
    assert cfg.data.synth.size_reference == 64 and cfg.train.threads == 1
    assert config_from_dict({}) == Config().replace({k: v for k, v in STORED_DEFAULTS.items() if k != "profile"}, profile="quick")


def test_overrides_and_key():
    a = get_config("smoke")
    b = a.replace({"train.seed": 3}, data__scale=8)
    assert b.train.seed == 3 and b.data.scale == 8 and a.train.seed == 0
    assert a.key() != b.key() and a.key() == get_config("smoke").key()
    assert a.replace({"train.grad_clip": "none"}).train.grad_clip is None
    with pytest.raises(KeyError):
        a.replace({"train.nope": 1})


def test_key_neutral_fields_leave_keys_and_stored_configs_as_they_were():
    """``data.label_fraction`` came after the golden keys: at 1 (every image labelled, what runs did before it
    existed) it is not hashed, and a config stored without it is the same config; any other value is a new key."""
    from deepmt.config import KEY_NEUTRAL_DEFAULTS, comparable_config
    from deepmt.engine.checkpoint import config_diff

    cfg = get_config("quick", KEY_NEUTRAL_DEFAULTS)
    assert cfg.key() == NEUTRAL_QUICK_KEY
    assert KEY_NEUTRAL_DEFAULTS == {"data.label_fraction": 1.0, "train.deterministic": True, "loss.stage1b_input": "hr",
                                    "train.epochs_by_method": {}, "loss.seg_dice_empty": "include",
                                    "data.nongrading_crop_size": None, "train.val_every": 1, "train.val_min_points": 0,
                                    "train.patience": 0, "train.grading_batch_size": None, "train.grading_learning_rate": None,
                                    "train.lr_scale": 1.0, "train.epochs_scale": 1.0,
                                    "train.module_selection": "joint", "model.grader.spp_pool": "max",
                                    "model.grader.oracle_maps": False, "loss.grading_into_seg": False}
    assert cfg.replace({"train.epochs_by_method": "isr:3"}).key() != cfg.key()
    assert cfg.replace({"train.deterministic": False}).key() != cfg.key()
    assert cfg.replace({"loss.stage1b_input": "sr"}).key() != cfg.key()
    assert cfg.replace({"loss.seg_dice_empty": "skip"}).key() != cfg.key()
    assert cfg.replace({"train.module_selection": "per_module"}).key() != cfg.key()
    few = cfg.replace({"data.label_fraction": 0.1})
    assert few.key() != cfg.key() and "label_fraction" in comparable_config(few.to_dict())["data"]
    stored = cfg.to_dict()
    del stored["data"]["label_fraction"], stored["train"]["deterministic"], stored["loss"]["stage1b_input"]  # older
    del stored["train"]["epochs_by_method"], stored["loss"]["seg_dice_empty"]
    del stored["data"]["nongrading_crop_size"], stored["train"]["val_every"], stored["train"]["patience"]
    del stored["train"]["grading_batch_size"], stored["train"]["grading_learning_rate"], stored["train"]["val_min_points"]
    del stored["train"]["module_selection"], stored["model"]["grader"]["spp_pool"], stored["model"]["grader"]["oracle_maps"]
    del stored["loss"]["grading_into_seg"], stored["train"]["lr_scale"], stored["train"]["epochs_scale"]
    assert comparable_config(cfg.to_dict()) == stored and "label_fraction" in cfg.to_dict()["data"]
    assert config_diff(stored, cfg.to_dict()) == [] and config_from_dict(stored) == cfg
    assert config_diff(stored, few.to_dict()) == ["data.label_fraction"]


def test_progress_bars_are_not_part_of_the_key():
    """``train.progress`` changes only what a run prints: on or off, the same cache entry and stored config."""
    from deepmt.config import comparable_config

    for profile in PROFILES:
        on, off = get_config(profile, {"train.progress": True}), get_config(profile, {"train.progress": False})
        assert on.key() == off.key() and comparable_config(on.to_dict()) == comparable_config(off.to_dict())
    assert get_config("quick").key() != get_config("quick", {"train.log_every": 5}).key()  # only the listed fields


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("DEEPMT_PROFILE", "smoke")
    assert get_config().profile == "smoke"
    monkeypatch.setenv("DEEPMT_PROFILE", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        get_config()


# --------------------------------------------------------------------------- typed settings
@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("train.lr", "abc", "a number > 0"),
        ("train.lr", "-1", "a number > 0"),
        ("train.lr", -1.0, "a number > 0"),
        ("train.batch_size", "abc", "an integer >= 1"),
        ("train.batch_size", "2.5", "an integer >= 1"),
        ("train.batch_size", 2.5, "an integer >= 1"),
        ("train.batch_size", "0", "an integer >= 1"),
        ("train.epochs_stage1a", "-3", "an integer >= 0"),
        ("train.channels_last", "maybe", "true or false"),
        ("train.precision", "fp64", "one of 'auto', 'fp32', 'bf16', 'fp16'"),
        ("train.device", "gpu", "auto, cpu, cuda or cuda:N"),
        ("data.scale", "3", "one of 2, 4, 8"),
        ("data.dataset", "kaggle", "one of 'synthetic'"),
        ("data.crop_size", "big", "an integer >= 1 or none"),
        ("data.val_fraction", "1.5", "a number in [0, 1)"),
        ("data.label_fraction", "0", "a number in (0, 1]"),
        ("data.label_fraction", "1.2", "a number in (0, 1]"),
        ("data.degradation.noise_std", "nan", "a number >= 0"),
        ("model.grader.dropout", "1", "a number in [0, 1)"),
        ("model.grader.spp_levels", "1,0,4", "list of values, each an integer >= 1"),
        ("model.vis.stages", "", "list of values, each an integer in [1, 4]"),
        ("data.synth.ma_sigma", "0.8", "list of 2 values, each a number >= 0"),
        ("loss.class_weights", "1,2", "list of 5 values, each a number >= 0 or one of 'auto', 'none'"),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(SettingError) as info:
        get_config("smoke", {key: value})
    msg = str(info.value)
    assert msg.startswith(f"{key}={value}: expected ") and allowed in msg, msg
    assert "\n" not in msg


def test_values_are_parsed_by_the_field_type():
    cfg = get_config("smoke", {
        "train.lr": "1e-3", "train.batch_size": "4", "train.eval_batch_size": 6.0, "train.grad_clip": "none",
        "data.crop_size": "32", "data.root": "none", "data.augment": "false", "train.progress": 1,
        "loss.class_weights": "1,2,3,4,5", "model.grader.spp_levels": "[1, 2]", "data.synth.ma_sigma": [0.5, 1],
        "loss.tv": 0, "data.degradation.jpeg_quality": "none",
    })
    assert cfg.train.lr == 0.001 and cfg.train.batch_size == 4 and cfg.train.eval_batch_size == 6
    assert type(cfg.train.eval_batch_size) is int and type(cfg.loss.tv) is float
    assert cfg.train.grad_clip is None and cfg.data.root is None and cfg.data.degradation.jpeg_quality is None
    assert cfg.data.crop_size == 32 and cfg.data.augment is False and cfg.train.progress is True
    assert cfg.loss.class_weights == (1.0, 2.0, 3.0, 4.0, 5.0) and cfg.model.grader.spp_levels == (1, 2)
    assert cfg.data.synth.ma_sigma == (0.5, 1.0)
    assert get_config("smoke", {"loss.class_weights": "none"}).loss.class_weights == "none"


def test_unknown_key_suggests_the_field():
    with pytest.raises(SettingError, match=r"unknown config field 'train.bach_size'; did you mean 'train.batch_size'\?"):
        get_config("smoke", {"train.bach_size": 4})
    with pytest.raises(SettingError, match="unknown config section 'trian'"):
        get_config("smoke", {"trian.lr": 1e-3})
    with pytest.raises(SettingError, match="is a section"):
        get_config("smoke", {"data.synth": 1})


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_value_passes_its_own_check(profile):
    """The check and the profiles agree: every field of every profile (new ones included) is allowed as it is."""
    import dataclasses

    def walk(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from walk(value, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", value

    cfg = get_config(profile)
    settings = dict(walk(cfg))
    assert len(settings) > 70
    assert cfg.replace(settings) == cfg
