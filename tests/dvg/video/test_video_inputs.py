"""discover_inputs: directories, list files, globs, single files."""

from __future__ import annotations

import os

import pytest

from dvg.video import discover_inputs, is_video_file


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


def test_directory_is_searched_recursively_skipping_hidden_and_sidecars(tree):
    found = discover_inputs([tree])
    assert found == sorted(
        [
            (tree / "a.mp4").as_posix(),
            (tree / "sub/b.MOV").as_posix(),
            (tree / "sub/deeper/c.webm").as_posix(),
        ]
    )
    assert all(os.path.isabs(p) for p in found)


def test_list_file_with_comments_relative_paths_and_folders(tree, tmp_path):
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# training videos\n\n../data/a.mp4\n  ../data/sub/deeper  \n"
        f"{(tree / 'sub/b.MOV').as_posix()}\n../data/missing.mp4\n"
    )
    found = discover_inputs([listing])
    assert found == [
        (tree / "a.mp4").as_posix(),
        (tree / "missing.mp4").as_posix(),  # kept: it fails later as not_found
        (tree / "sub/b.MOV").as_posix(),
        (tree / "sub/deeper/c.webm").as_posix(),
    ]


def test_glob_single_file_and_deduplication(tree, monkeypatch):
    monkeypatch.chdir(tree)
    found = discover_inputs(["**/*.webm", "a.mp4", str(tree / "a.mp4"), "sub/../a.mp4"])
    assert found == [(tree / "a.mp4").as_posix(), (tree / "sub/deeper/c.webm").as_posix()]
    # a glob only returns videos
    assert discover_inputs(["sub/*"]) == [(tree / "sub/b.MOV").as_posix()]
    # a file named explicitly is kept whatever its extension
    assert discover_inputs(["notes.md"]) == [(tree / "notes.md").as_posix()]


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
