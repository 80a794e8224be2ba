"""discover_inputs: directories, list files, globs, single files; names relative to the root."""

from __future__ import annotations

import os
import shutil

import pytest

from dvg.video import VideoInput, discover_inputs, is_video_file


@pytest.fixture
def tree(tmp_path):
    for name in [
        "a.mp4",
        "sub/b.MOV",
        "sub/deeper/c.webm",
        "sub/clip.depth.npy",
        "sub/clip.camera.json",
        "notes.md",
        ".hidden/d.mp4",
        "sub/.e.mp4",
    ]:
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path / "data"


def _pairs(found: list[VideoInput]) -> list[tuple[str, str]]:
    return [(v.name, v.path) for v in found]


def test_directory_is_searched_recursively_skipping_hidden_and_sidecars(tree):
    found = discover_inputs([tree])
    assert _pairs(found) == [
        ("a.mp4", (tree / "a.mp4").as_posix()),
        ("sub/b.MOV", (tree / "sub/b.MOV").as_posix()),
        ("sub/deeper/c.webm", (tree / "sub/deeper/c.webm").as_posix()),
    ]
    assert all(os.path.isabs(v.path) for v in found)


def test_names_do_not_depend_on_where_the_root_is_mounted(tree, tmp_path):
    copy = tmp_path / "elsewhere" / "mount"
    shutil.copytree(tree, copy)
    link = tmp_path / "linked"
    link.symlink_to(tree)
    names = [v.name for v in discover_inputs([tree])]
    assert [v.name for v in discover_inputs([copy])] == names
    assert [v.name for v in discover_inputs([link])] == names
    assert {v.path for v in discover_inputs([link])} != {v.path for v in discover_inputs([tree])}


def test_list_file_with_comments_relative_paths_and_folders(tree, tmp_path):
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# training videos\n\n../data/a.mp4\n  ../data/sub/deeper  \n"
        f"{(tree / 'sub/b.MOV').as_posix()}\n../data/missing.mp4\n"
    )
    found = discover_inputs([listing])
    assert sorted((v.path, v.name) for v in found) == [
        ((tree / "a.mp4").as_posix(), "../data/a.mp4"),
        ((tree / "missing.mp4").as_posix(), "../data/missing.mp4"),  # fails later: not_found
        ((tree / "sub/b.MOV").as_posix(), (tree / "sub/b.MOV").as_posix()),  # absolute entry
        ((tree / "sub/deeper/c.webm").as_posix(), "../data/sub/deeper/c.webm"),
    ]


def test_glob_single_file_and_deduplication(tree, monkeypatch):
    monkeypatch.chdir(tree)
    found = discover_inputs(["**/*.webm", "a.mp4", str(tree / "a.mp4"), "sub/../a.mp4"])
    assert _pairs(found) == [
        ("a.mp4", (tree / "a.mp4").as_posix()),
        ("sub/deeper/c.webm", (tree / "sub/deeper/c.webm").as_posix()),
    ]
    # a glob's names are relative to its leading folders without pattern characters
    assert [v.name for v in discover_inputs([f"{tree.as_posix()}/sub/**/*.webm"])] == [
        "deeper/c.webm"
    ]
    # a glob only returns videos
    assert [v.name for v in discover_inputs(["sub/*"])] == ["b.MOV"]
    # a file named explicitly is kept whatever its extension
    assert _pairs(discover_inputs(["notes.md"])) == [("notes.md", (tree / "notes.md").as_posix())]


def test_two_files_with_the_same_name_are_refused_with_both_paths(tree):
    (tree / "other").mkdir()
    shutil.copy(tree / "a.mp4", tree / "other" / "a.mp4")
    with pytest.raises(ValueError, match=r"would both be named 'a\.mp4'.*common parent folder"):
        discover_inputs([tree / "a.mp4", tree / "other" / "a.mp4"])
    # through their common parent the names differ
    assert {"a.mp4", "other/a.mp4"} <= {v.name for v in discover_inputs([tree])}


def test_source_matching_nothing_is_an_error(tree):
    (tree / "empty_folder").mkdir()
    for source in [tree / "nope.mp4", str(tree / "*.mkv"), tree / "empty_folder"]:
        with pytest.raises(ValueError, match="matches no video"):
            discover_inputs([source])
    with pytest.raises(TypeError):
        discover_inputs(str(tree))


def test_is_video_file():
    assert is_video_file("x/y.MP4") and is_video_file("a.ts") and is_video_file("b.gif")
    assert not is_video_file("clip.depth.npy") and not is_video_file(".a.mp4")
