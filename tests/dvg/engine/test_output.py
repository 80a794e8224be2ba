"""Output layout: deterministic groups, atomic writes, stale-file cleanup."""

import os

import pytest

from dvg.engine.output import atomic_write, clean_partial, plan_groups
from dvg.video import VideoInput


def test_groups_depend_only_on_the_sorted_input_names():
    videos = [VideoInput(f"{name}.mp4", f"/v/{name}.mp4") for name in "edcba"]
    groups = plan_groups(videos, 2)
    assert [g.name for g in groups] == ["000000", "000001", "000002"]
    assert groups[0].videos == ("a.mp4", "b.mp4")
    assert groups[2].videos == ("e.mp4",)
    assert plan_groups(list(reversed(videos)), 2) == groups
    elsewhere = [VideoInput(v.name, f"/mnt/other{v.path}") for v in videos]
    assert [g.videos for g in plan_groups(elsewhere, 2)] == [g.videos for g in groups]


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "000000.parquet"
    path.write_bytes(b"old")

    def fail(handle):
        handle.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["000000.parquet"]
    atomic_write(path, lambda handle: handle.write(b"new"))
    assert path.read_bytes() == b"new"


def test_clean_partial_removes_temporaries_and_spools_only(tmp_path):
    (tmp_path / "000000.tar").write_bytes(b"x")
    (tmp_path / "000001.tar.tmp-123").write_bytes(b"x")
    (tmp_path / ".000001.spool").mkdir()
    (tmp_path / ".000001.spool" / "k.tar").write_bytes(b"x")
    removed = clean_partial(tmp_path)
    assert sorted(p.name for p in removed) == [".000001.spool", "000001.tar.tmp-123"]
    assert sorted(os.listdir(tmp_path)) == ["000000.tar"]
