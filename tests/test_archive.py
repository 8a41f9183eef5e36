"""Safe extraction: every refusal of section 5, and nothing left behind."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from hubcli.errors import InvalidModuleError, UnsafeContentError
from hubcli.hub.archive import extract_module_archive
from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.hubserver import make_fake_module_archive

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]


def _tar(path, members, mode="w:gz"):
    """Write an archive from (TarInfo fields, data) pairs; data None for non-files."""
    with tarfile.open(path, mode) as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields["name"])
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


MODEL = ({"name": "saved_model.pb"}, b"\x08\x01model")


def test_extracts_module_and_returns_manifest(fake_archive, tmp_path):
    dest = tmp_path / "out"
    manifest = extract_module_archive(fake_archive, dest)
    with tarfile.open(fake_archive) as tar:
        expected = {m.name: m.size for m in tar.getmembers() if m.isfile()}
    assert {name: info["size"] for name, info in manifest.items()} == expected
    for name, info in manifest.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == info["sha256"]


def test_symlink_inside_module_is_kept(tmp_path):
    archive = _tar(
        tmp_path / "a.tar.gz",
        [MODEL, ({"name": "assets/vocab.txt"}, b"a\nb\n"), ({"name": "vocab", "type": tarfile.SYMTYPE, "linkname": "assets/vocab.txt"}, None)],
    )
    dest = tmp_path / "out"
    extract_module_archive(archive, dest)
    assert (dest / "vocab").is_symlink() and (dest / "vocab").read_text() == "a\nb\n"


def test_hard_link_to_earlier_member_is_copied(tmp_path):
    archive = _tar(tmp_path / "a.tar", [MODEL, ({"name": "copy.pb", "type": tarfile.LNKTYPE, "linkname": "saved_model.pb"}, None)], "w")
    manifest = extract_module_archive(archive, tmp_path / "out")
    assert manifest["copy.pb"] == manifest["saved_model.pb"]
    assert (tmp_path / "out" / "copy.pb").read_bytes() == MODEL[1]


@pytest.mark.parametrize(
    "members, message",
    [
        ([MODEL, ({"name": "../escape.txt"}, b"x")], "'..'"),
        ([MODEL, ({"name": "variables/../../escape.txt"}, b"x")], "'..'"),
        ([MODEL, ({"name": "/etc/evil"}, b"x")], "absolute path"),
        ([MODEL, ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)], "points outside"),
        ([MODEL, ({"name": "sub/link", "type": tarfile.SYMTYPE, "linkname": "../../outside"}, None)], "points outside"),
        ([MODEL, ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)], "absolute path"),
        ([MODEL, ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "../outside"}, None)], "'..'"),
        ([MODEL, ({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)], "device file"),
        ([MODEL, ({"name": "blk", "type": tarfile.BLKTYPE, "devmajor": 7, "devminor": 0}, None)], "device file"),
        ([MODEL, ({"name": "pipe", "type": tarfile.FIFOTYPE}, None)], "FIFO"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-absolute", "symlink-relative-escape", "hardlink-absolute",
         "hardlink-escape", "char-device", "block-device", "fifo"],
)
def test_unsafe_members_are_refused_and_nothing_is_left(tmp_path, members, message):
    archive = _tar(tmp_path / "evil.tar.gz", members)
    dest = tmp_path / "out"
    with pytest.raises(UnsafeContentError, match=message):
        extract_module_archive(archive, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_write_through_symlinked_directory_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _tar(
        tmp_path / "evil.tar.gz",
        [MODEL, ({"name": "d", "type": tarfile.SYMTYPE, "linkname": "."}, None)],
    )
    # A link to "." is harmless; one to the parent is refused before any file goes through it.
    extract_module_archive(archive, tmp_path / "ok")
    archive = _tar(tmp_path / "evil2.tar.gz", [MODEL, ({"name": "d", "type": tarfile.SYMTYPE, "linkname": ".."}, None), ({"name": "d/x"}, b"x")])
    with pytest.raises(UnsafeContentError):
        extract_module_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_size_limit_refuses_bombs(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", [MODEL, ({"name": "zeros.bin"}, bytes(1_000_000))])
    assert archive.stat().st_size < 10_000  # Compresses 100x: the shape of a bomb.
    with pytest.raises(UnsafeContentError, match="byte limit"):
        extract_module_archive(archive, tmp_path / "out", max_bytes=500_000)
    assert not (tmp_path / "out").exists()


def test_size_limit_from_environment(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "big.tar.gz", [MODEL, ({"name": "zeros.bin"}, bytes(100_000))])
    monkeypatch.setenv("HUBCLI_MAX_EXTRACT_BYTES", "50000")
    with pytest.raises(UnsafeContentError, match="HUBCLI_MAX_EXTRACT_BYTES"):
        extract_module_archive(archive, tmp_path / "out")


def test_content_that_is_not_a_module_is_refused(tmp_path):
    archive = _tar(tmp_path / "notes.tar.gz", [({"name": "README.md"}, b"# hi")])
    with pytest.raises(InvalidModuleError, match="no saved_model.pb"):
        extract_module_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_module_nested_one_level_down_is_not_a_module(tmp_path):
    # `tar czf m.tar.gz model/` instead of `tar czf m.tar.gz -C model .`: say where the module is.
    archive = _tar(tmp_path / "nested.tar.gz", [({"name": "model/saved_model.pb"}, b"x")])
    with pytest.raises(InvalidModuleError, match=r"found model/saved_model.pb; pack the module directory's contents"):
        extract_module_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_file_named_tar_gz_is_named_as_a_zip(tmp_path):
    import zipfile

    archive = tmp_path / "model.tar.gz"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("saved_model.pb", b"x")
    with pytest.raises(InvalidModuleError, match="model.tar.gz is a zip file, not a tar archive"):
        extract_module_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"<html>Sign in to continue</html>", b""], ids=["html-page", "empty"])
def test_bytes_that_are_not_a_tar_are_refused(tmp_path, content):
    archive = tmp_path / "page.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(InvalidModuleError):
        extract_module_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_refused(tmp_path):
    full = make_fake_module_archive(tmp_path / "full.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InvalidModuleError):
        extract_module_archive(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_setuid_bits_are_dropped(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [MODEL, ({"name": "run.sh", "mode": 0o4777}, b"#!/bin/sh\n")])
    extract_module_archive(archive, tmp_path / "out")
    assert os.stat(tmp_path / "out" / "run.sh").st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(
    "members, code",
    [
        ([MODEL, ({"name": "../escape.txt"}, b"x")], 6),
        ([({"name": "README.md"}, b"# hi")], 7),
    ],
    ids=["unsafe", "not-a-module"],
)
def test_cli_refusal_is_one_line_and_leaves_cache_clean(tmp_path, members, code):
    archive = _tar(tmp_path / "bad.tar.gz", members)
    cache = tmp_path / "cache"
    done = run_hubcli("pull", archive, env={"HUBCLI_CACHE_DIR": str(cache), "HUBCLI_CONFIG": str(tmp_path / "none.toml")})
    error_line(done, code, alone=True)
    assert done.stdout == ""
    assert not (tmp_path / "escape.txt").exists()
    leftovers = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert leftovers == []
