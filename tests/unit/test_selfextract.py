"""The single file's self-extracting launcher (packaging/), run on a tiny one-folder payload:
unpacks once per build into a private cache folder, atomically, and never trusts a folder that
another user could write to."""

from __future__ import annotations

import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """A self-extracting file whose 'botctl' reports where it runs from and what it was given."""
    folder = tmp_path / "onedir"
    (folder / "_internal").mkdir(parents=True)
    (folder / "_internal" / "data.txt").write_text("bundled\n")
    entry = folder / "botctl"
    entry.write_text(
        '#!/bin/sh\nhere=$(dirname "$0")\n'
        'echo "dir=$here args=$* launcher=$BOTCTL_LAUNCHER data=$(cat "$here/_internal/data.txt")"\n'
        'exit 7\n'
    )
    entry.chmod(0o755)
    out = tmp_path / "botctl"
    subprocess.run([str(PACKAGING / "make-selfextract.sh"), str(folder), "0.1.0", str(out)], check=True)
    return out


def start(launcher: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(launcher), *args], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env},
    )


def fields(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in result.stdout.split(" ") if "=" in part)


def test_first_start_unpacks_into_a_private_cache_and_later_starts_reuse_it(launcher, tmp_path):
    first = start(launcher, tmp_path / "home", "status", "--json")
    assert first.returncode == 7 and first.stderr == ""
    ran_from = Path(fields(first)["dir"])
    cache = tmp_path / "home" / ".cache" / "botctl"
    assert ran_from.parent == cache and ran_from.name.startswith("0.1.0-")
    assert fields(first)["launcher"] == str(launcher)
    assert "args=status --json" in first.stdout and "data=bundled" in first.stdout
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    marker = ran_from / "_internal" / "data.txt"
    marker.write_text("kept\n")  # a re-unpack would put 'bundled' back
    second = start(launcher, tmp_path / "home", "--version")
    assert fields(second)["dir"] == str(ran_from) and "data=kept" in second.stdout
    assert [p.name for p in cache.iterdir()] == [ran_from.name]


def test_xdg_cache_home_is_used_when_set(launcher, tmp_path):
    result = start(launcher, tmp_path / "home", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert Path(fields(result)["dir"]).parent == tmp_path / "xdg" / "botctl"


def test_two_first_starts_at_once_both_run_one_complete_copy(launcher, tmp_path):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: start(launcher, tmp_path / "home"), range(4)))
    assert all(r.returncode == 7 and "data=bundled" in r.stdout for r in results)
    cache = tmp_path / "home" / ".cache" / "botctl"
    assert len({fields(r)["dir"] for r in results}) == 1
    assert [p.name for p in cache.iterdir() if p.name.startswith(".unpack.")] == []


def test_an_unpack_cut_short_by_a_crash_is_never_run(launcher, tmp_path):
    cache = tmp_path / "home" / ".cache" / "botctl"
    cache.mkdir(parents=True, mode=0o700)
    half = cache / ".unpack.crashed1"
    half.mkdir()
    os.utime(half, (0, 0))  # left behind long ago
    result = start(launcher, tmp_path / "home")
    assert result.returncode == 7 and "data=bundled" in result.stdout
    assert not half.exists()


def test_a_cache_folder_others_can_write_to_is_not_used(launcher, tmp_path):
    cache = tmp_path / "home" / ".cache" / "botctl"
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    result = start(launcher, tmp_path / "home")
    assert result.returncode == 7 and "data=bundled" in result.stdout
    assert "not a private folder" in result.stderr
    assert not Path(fields(result)["dir"]).exists()  # its temporary folder is gone
    assert list(cache.iterdir()) == []


def test_a_cache_folder_that_is_a_symlink_is_not_used(launcher, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "home" / ".cache").mkdir(parents=True)
    (tmp_path / "home" / ".cache" / "botctl").symlink_to(elsewhere)
    result = start(launcher, tmp_path / "home")
    assert result.returncode == 7 and "not a private folder" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_damaged_file_fails_with_one_line_and_leaves_no_half_copy(launcher, tmp_path):
    data = launcher.read_bytes()
    launcher.write_bytes(data[: len(data) - 40])
    result = start(launcher, tmp_path / "home")
    assert result.returncode == 1
    assert "botctl: cannot unpack" in result.stderr.splitlines()[-1]
    assert list((tmp_path / "home" / ".cache" / "botctl").iterdir()) == []
