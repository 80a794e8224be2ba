"""Build configuration: presets, TOML overrides, validation and the data hash."""

import pytest

from dvg.engine import BuildConfig, apply_overrides, load_config, preset_config


def test_presets_name_the_papers_and_the_weights_free_backends():
    paper = preset_config("paper")
    assert (paper.depth.name, paper.inpaint.name, paper.flow.name) == ("dpt", "sd", "raft")
    offline = preset_config("offline")
    assert (offline.depth.name, offline.inpaint.name, offline.flow.name) == (
        "sidecar",
        "telea",
        "dis",
    )
    assert BuildConfig().preset == "paper"
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset_config("nope")


def test_toml_overrides_sections_and_turns_lists_into_ranges(tmp_path):
    path = tmp_path / "build.toml"
    path.write_text(
        'preset = "offline"\n'
        "[video]\nclip_length = 8\n"
        "[stereo]\nmax_disparity = [0.01, 0.03]\n"
        '[depth]\nname = "dpt"\nmodel = "/weights/dpt"\n'
    )
    config = load_config(path)
    assert config.preset == "offline"
    assert config.video.clip_length == 8
    assert config.stereo.max_disparity == (0.01, 0.03)
    assert (config.depth.name, config.depth.model) == ("dpt", "/weights/dpt")
    assert config.inpaint.name == "telea"
    # The argument wins over the file's preset.
    assert load_config(path, preset="paper").inpaint.name == "sd"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[nope]\nx = 1\n", "unknown config section 'nope'"),
        ("[video]\nclip_lenght = 8\n", "unknown field.*clip_lenght.*in \\[video\\]"),
        ("[stereo]\nmax_disparity = [0.05, 0.01]\n", "stereo.max_disparity"),
        ("[output]\nvideos_per_group = 0\n", "videos_per_group"),
        ("[executor]\nkind = 'slurm'\n", "executor.kind"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_configuration_is_a_clear_error_naming_the_file(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        load_config(path)
    assert "bad.toml" in str(error.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.toml does not exist"):
        load_config(tmp_path / "missing.toml")


def test_changing_the_backend_name_starts_from_its_defaults():
    config = apply_overrides(preset_config("paper"), {"depth": {"model": "/w/dpt"}})
    assert config.depth.model == "/w/dpt"
    switched = apply_overrides(config, {"depth": {"name": "sidecar"}})
    assert switched.depth.model is None


def test_data_hash_ignores_the_executor_and_device_but_not_the_data():
    base = preset_config("offline")
    same = apply_overrides(
        base, {"executor": {"kind": "ray", "num_gpus": 0.5}, "depth": {"device": "cuda"}}
    )
    assert same.data_hash() == base.data_hash()
    other = apply_overrides(base, {"stereo": {"seed": 1}})
    assert other.data_hash() != base.data_hash()
    assert len(base.data_hash()) == 16
