"""`base.git_version`: an extension's commit read from `.git` without git, in the layouts extensions come in."""

from __future__ import annotations

from pathlib import Path

from ssd1b.webui.extensions.base import UNKNOWN_VERSION, git_version

COMMIT = "22798f68aa1b2c3d4e5f60718293a4b5c6d7e8f9"


def repository(root: Path, head: str = "ref: refs/heads/main") -> Path:
    dot_git = root / ".git"
    (dot_git / "refs" / "heads").mkdir(parents=True)
    (dot_git / "HEAD").write_text(head + "\n")
    return dot_git


def script(root: Path) -> Path:
    path = root / "scripts" / "tilevae.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def test_a_branch_a_packed_ref_and_a_detached_head(tmp_path):
    loose = tmp_path / "loose"
    (repository(loose) / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    packed = tmp_path / "packed"
    (repository(packed) / "packed-refs").write_text(f"# pack-refs with: peeled\n{COMMIT} refs/heads/main\n")
    detached = tmp_path / "detached"
    repository(detached, head=COMMIT)
    for root in (loose, packed, detached):
        assert git_version(script(root)) == COMMIT[:8]


def test_a_worktree_reads_its_branch_from_the_main_repository(tmp_path):
    main_git = repository(tmp_path / "main")
    (main_git / "refs" / "heads" / "feature").write_text(COMMIT + "\n")
    worktree_git = main_git / "worktrees" / "feature"
    worktree_git.mkdir(parents=True)
    (worktree_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (worktree_git / "commondir").write_text("../..\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {worktree_git}\n")
    assert git_version(script(checkout)) == COMMIT[:8]


def test_a_folder_inside_a_repository_walks_up_and_none_is_unknown(tmp_path):
    (repository(tmp_path / "onediff") / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    assert git_version(script(tmp_path / "onediff" / "onediff_sd_webui_extensions")) == COMMIT[:8]
    assert git_version(None) == UNKNOWN_VERSION
