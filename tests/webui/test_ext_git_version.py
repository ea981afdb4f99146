"""`base.git_version`: the commit of the checkout an extension was loaded from, read from `.git` without git."""

from __future__ import annotations

from ssd1b.webui.extensions.base import UNKNOWN_VERSION, git_version

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_clone_on_a_branch_a_detached_head_and_packed_refs(tmp_path):
    branch = tmp_path / "branch"
    (branch / ".git" / "refs" / "heads").mkdir(parents=True)
    (branch / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (branch / ".git" / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    detached = tmp_path / "detached"
    (detached / ".git").mkdir(parents=True)
    (detached / ".git" / "HEAD").write_text(COMMIT + "\n")
    packed = tmp_path / "packed"
    (packed / ".git").mkdir(parents=True)
    (packed / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (packed / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{COMMIT} refs/heads/main\n")
    for root in (branch, detached, packed):
        (root / "scripts").mkdir()
        assert git_version(root / "scripts" / "x.py") == COMMIT[:8]


def test_a_linked_worktree_finds_its_branch_in_the_main_repository(tmp_path):
    main_git = tmp_path / "main" / ".git"
    (main_git / "refs" / "heads").mkdir(parents=True)
    (main_git / "refs" / "heads" / "feature").write_text(COMMIT + "\n")
    worktree_git = main_git / "worktrees" / "feature"
    worktree_git.mkdir(parents=True)
    (worktree_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (worktree_git / "commondir").write_text("../..\n")
    checkout = tmp_path / "feature"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / ".git").write_text(f"gitdir: {worktree_git}\n")
    assert git_version(checkout / "scripts" / "x.py") == COMMIT[:8]


def test_no_checkout_is_an_unknown_version(tmp_path):
    assert git_version(tmp_path / "x.py") == UNKNOWN_VERSION
    assert git_version(None) == UNKNOWN_VERSION
