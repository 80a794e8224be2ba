import pytest
import torch

from dvg.engine import apply_overrides, preset_config
from dvg.engine.threads import available_cpus, default_torch_threads, torch_threads


def test_default_leaves_half_the_cpus_to_decode_and_encode():
    assert default_torch_threads() == max(1, available_cpus() // 2)


def test_thread_count_is_set_for_the_block_and_restored():
    before = torch.get_num_threads()
    with torch_threads(3) as count:
        assert count == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with torch_threads(None) as count:
        assert count == default_torch_threads() == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_build_option_is_validated():
    config = apply_overrides(preset_config("offline"), {"executor": {"threads": 2}})
    assert config.executor.threads == 2
    with pytest.raises(ValueError, match=r"executor\.threads"):
        apply_overrides(preset_config("offline"), {"executor": {"threads": 0}})
