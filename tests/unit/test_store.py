import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ssd1b.presets import STORE_FORMAT, Preset, PresetError, PresetStore
from ssd1b.presets import store as presets

HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "../../etc/passwd", "日本語 ✨ «preset»", "a/b\\c:*?", ".."]
REPO_ROOT = Path(__file__).resolve().parents[2]


def make(name="mine", **changes):
    values = {
        "name": name,
        "family": "ssd-1b",
        "steps": 30,
        "cfg_scale": 7.0,
        "sampler": "Euler a",
        "scheduler": None,
        "negative_prompt": "ugly",
    }
    return Preset(**{**values, **changes})


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "data" / "ssd1b"
    return folder


@pytest.fixture
def store(folder):
    return PresetStore(folder / "presets.json")


def files_in(folder):
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# --- the ordinary life of a store -----------------------------------------------------------------------------------


def test_a_missing_file_is_an_empty_store_and_loading_creates_nothing(store, folder):
    assert store.load() == presets.StoreState([])
    assert not folder.exists()


def test_save_then_load(store, folder):
    store.save(make("one", lora="lcm-ssd-1b", lora_weight=0.8, width=1216, height=832))
    state = store.load()
    assert state.problem is None
    assert state.presets == [make("one", lora="lcm-ssd-1b", lora_weight=0.8, width=1216, height=832)]
    document = json.loads((folder / "presets.json").read_text(encoding="utf-8"))
    assert document["format"] == STORE_FORMAT
    assert document["version"] == 1
    assert "builtin" not in document["presets"][0]
    assert files_in(folder) == ["presets.json"]


def test_saving_a_name_again_replaces_it_in_place(store):
    store.save(make("a"))
    store.save(make("b"))
    store.save(make("a", steps=12))
    assert [(p.name, p.steps) for p in store.load().presets] == [("a", 12), ("b", 30)]


def test_a_saved_preset_is_never_marked_builtin(store):
    store.save(Preset(**{**make("x").to_json(), "builtin": True}))
    assert store.load().presets[0].builtin is False


@pytest.mark.parametrize("name", ["SSD-1B", "ssd-1b", "vega + vegart"])
def test_builtin_names_are_refused(store, name):
    with pytest.raises(PresetError, match="built-in"):
        store.save(make(name))
    assert store.load().presets == []


def test_invalid_presets_are_refused_before_anything_is_written(store, folder):
    with pytest.raises(PresetError, match="'steps' must be between 1 and 150"):
        store.save(make(steps=1000))
    assert not folder.exists()


def test_rename(store):
    store.save(make("a"))
    store.save(make("b"))
    renamed = store.rename("a", "c")
    assert renamed.name == "c"
    assert store.names() == ["c", "b"]
    with pytest.raises(PresetError, match="already exists"):
        store.rename("c", "b")
    with pytest.raises(PresetError, match="no preset of yours named 'zzz'"):
        store.rename("zzz", "y")
    with pytest.raises(PresetError, match="built-in"):
        store.rename("c", "Segmind Vega")
    with pytest.raises(PresetError, match="must not be empty"):
        store.rename("c", "")
    assert store.names() == ["c", "b"]


def test_delete(store):
    store.save(make("a"))
    store.save(make("b"))
    store.delete("a")
    assert store.names() == ["b"]
    with pytest.raises(PresetError, match="built in"):
        store.delete("SSD-1B")
    with pytest.raises(PresetError, match="no preset of yours"):
        store.delete("a")


def test_get(store):
    store.save(make("a", steps=9))
    assert store.get("a").steps == 9
    assert store.get("nope") is None


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_are_data_never_paths(tmp_path, name):
    folder = tmp_path / "deep" / "data" / "ssd1b"
    store = PresetStore(folder / "presets.json")
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    store.save(make(name))
    store.rename(name, name + " 2")
    store.save(make(name))
    assert store.names() == [name + " 2", name]
    after = sorted(str(path) for path in tmp_path.rglob("*"))
    created = set(after) - set(before)
    assert created == {str(folder.parents[1]), str(folder.parent), str(folder), str(folder / "presets.json")}
    store.delete(name)
    assert store.names() == [name + " 2"]


def test_unicode_survives_a_round_trip_byte_for_byte(store, folder):
    name = "😀 Ünïcödé 漢字 \u200b zero-width"
    store.save(make(name, negative_prompt="ぼやけた, (低品質)"))
    assert store.load().presets[0] == make(name, negative_prompt="ぼやけた, (低品質)")
    assert name in (folder / "presets.json").read_text(encoding="utf-8")


def test_concurrent_saves_lose_nothing(store):
    threads = [threading.Thread(target=store.save, args=(make(f"p{index}"),)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(store.names()) == sorted(f"p{index}" for index in range(12))


def test_two_store_objects_on_one_file_share_the_lock(folder):
    assert PresetStore(folder / "presets.json")._lock is PresetStore(folder / "presets.json")._lock


# --- export / import --------------------------------------------------------------------------------------------------


def test_export_import_round_trip(store, tmp_path):
    store.save(make("a", lora="vegart"))
    store.save(make(HOSTILE_NAMES[0]))
    other = PresetStore(tmp_path / "other" / "presets.json")
    result = other.import_json(store.export_json())
    assert result.added == ["a", HOSTILE_NAMES[0]]
    assert other.load().presets == store.load().presets


def test_import_skips_existing_names_unless_replacing(store):
    store.save(make("a", steps=10))
    text = json.dumps([make("a", steps=20).to_json(), make("b").to_json()])
    result = store.import_json(text)
    assert (result.added, result.replaced, result.skipped) == (["b"], [], ["a"])
    assert store.get("a").steps == 10
    result = store.import_json(text, replace=True)
    assert (result.added, result.replaced, result.skipped) == ([], ["a", "b"], [])
    assert store.get("a").steps == 20
    assert result.summary() == "0 added, 2 replaced, 0 skipped"


def test_import_reports_bad_entries_and_keeps_the_good_ones(store):
    entries = [
        make("good").to_json(),
        {**make("bad").to_json(), "steps": "many"},
        make("SSD-1B").to_json(),
        make("good").to_json(),
        "not an object",
    ]
    result = store.import_json(json.dumps(entries))
    assert result.added == ["good"]
    assert result.skipped == ["SSD-1B"]
    assert result.problems == [
        "entry 2: 'steps' must be a whole number (got \"many\")",
        "entry 4: 'good' appears twice; the first one was kept",
        "entry 5: a preset must be a JSON object, got text",
        "'SSD-1B' is the name of a built-in preset",
    ]
    assert store.names() == ["good"]


def test_import_accepts_one_preset_object(store):
    assert store.import_json(json.dumps(make("solo").to_json())).added == ["solo"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("42", "expected a preset, a list of presets or an export, got a number"),
        (json.dumps({"format": "other", "presets": []}), "'format' must be"),
        (json.dumps({"format": STORE_FORMAT, "version": 2, "presets": []}), "newer sd-webui-ssd1b"),
        (json.dumps({"presets": {"a": 1}}), "'presets' must be a list, got an object"),
    ],
)
def test_import_refuses_what_is_not_presets(store, folder, text, message):
    with pytest.raises(PresetError, match=message):
        store.import_json(text)
    assert not folder.exists()


def test_an_import_that_adds_nothing_writes_nothing(store, folder):
    result = store.import_json("[]")
    assert result.added == result.replaced == []
    assert not folder.exists()


# --- atomic writes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(store, folder, monkeypatch, failing):
    store.save(make("old"))
    before = (folder / "presets.json").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(presets.os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        store.save(make("new"))
    monkeypatch.undo()
    assert (folder / "presets.json").read_bytes() == before
    assert files_in(folder) == ["presets.json"]
    assert store.names() == ["old"]


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from ssd1b.presets import store as presets

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(presets.os, sys.argv[3], die)
    presets.PresetStore(sys.argv[2]).save(presets.Preset("new", "ssd-1b", 4, 1.0, "LCM", None, "x" * 9000))
    """
)


@pytest.mark.parametrize("killed_in", ["fsync", "replace"])
def test_a_writer_killed_midway_leaves_the_old_file_intact(store, folder, killed_in):
    store.save(make("old"))
    before = (folder / "presets.json").read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(REPO_ROOT), str(folder / "presets.json"), killed_in],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr.decode()
    assert (folder / "presets.json").read_bytes() == before
    leftovers = [name for name in files_in(folder) if name != "presets.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".presets.json.") and leftovers[0].endswith(".tmp")
    assert store.load() == presets.StoreState([make("old")])
    store.save(make("after"))
    assert store.names() == ["old", "after"]


def test_the_written_file_keeps_the_users_permissions(store, folder):
    store.save(make("a"))
    os.chmod(folder / "presets.json", 0o600)
    store.save(make("b"))
    assert (folder / "presets.json").stat().st_mode & 0o777 == 0o600


# --- damaged files ----------------------------------------------------------------------------------------------------


def backups(folder):
    return [name for name in files_in(folder) if name.startswith("presets.json.damaged-")]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{ this is not json", "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b'["a list"]', "not a presets file"),
        (json.dumps({"format": STORE_FORMAT, "version": 9, "presets": []}).encode(), "newer sd-webui-ssd1b"),
        (json.dumps({"presets": [{"name": "x"}]}).encode(), "preset 1: 'family' is missing"),
    ],
)
def test_a_damaged_file_is_backed_up_reported_and_not_overwritten(store, folder, content, reason):
    folder.mkdir(parents=True)
    (folder / "presets.json").write_bytes(content)
    state = store.load()
    assert state.presets == []
    assert reason in state.problem
    assert "damaged" in state.problem
    [backup] = backups(folder)
    assert backup in state.problem
    assert state.backup == folder / backup
    assert (folder / backup).read_bytes() == content
    assert (folder / "presets.json").read_bytes() == content
    store.load()
    assert backups(folder) == [backup], "loading again must not pile up backups"


def test_saving_over_a_damaged_file_starts_fresh_and_keeps_the_backup(store, folder):
    folder.mkdir(parents=True)
    (folder / "presets.json").write_bytes(b"{ broken")
    store.save(make("new"))
    [backup] = backups(folder)
    assert (folder / backup).read_bytes() == b"{ broken"
    assert store.load() == presets.StoreState([make("new")])


def test_a_partly_damaged_file_still_offers_its_valid_presets(store, folder):
    folder.mkdir(parents=True)
    good = {k: v for k, v in make("good").to_json().items() if k != "builtin"}
    bad = {**good, "name": "bad", "cfg_scale": "high"}
    raw = json.dumps({"format": STORE_FORMAT, "version": 1, "presets": [good, bad]}).encode()
    (folder / "presets.json").write_bytes(raw)
    state = store.load()
    assert state.presets == [make("good")]
    assert "preset 2: 'cfg_scale' must be a number" in state.problem
    assert "the 1 valid preset(s) in it are shown" in state.problem
    store.save(make("more"))
    assert store.names() == ["good", "more"]
    assert (folder / backups(folder)[0]).read_bytes() == raw


def test_no_save_when_the_backup_cannot_be_written(store, folder, monkeypatch):
    folder.mkdir(parents=True)
    (folder / "presets.json").write_bytes(b"{ broken")

    def refuse(self, raw):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(PresetStore, "_backup", refuse)
    state = store.load()
    assert "no backup could be written" in state.problem
    with pytest.raises(PresetError, match="not saving"):
        store.save(make("new"))
    assert (folder / "presets.json").read_bytes() == b"{ broken"


def test_a_file_too_large_to_be_presets_is_treated_as_damaged(store, folder, monkeypatch):
    monkeypatch.setattr(presets, "MAX_STORE_BYTES", 100)
    folder.mkdir(parents=True)
    (folder / "presets.json").write_text(" " * 200)
    assert "larger than" in store.load().problem
    assert len(backups(folder)) == 1


def test_an_unreadable_store_is_reported_not_raised(store, folder):
    (folder / "presets.json").mkdir(parents=True)
    state = store.load()
    assert state.presets == [] and "cannot read presets.json" in state.problem
    with pytest.raises(PresetError, match="not saving"):
        store.save(make("x"))


def test_backup_names_with_glob_characters_are_found_again(tmp_path):
    store = PresetStore(tmp_path / "pre[s]ets*.json")
    (tmp_path / "pre[s]ets*.json").write_text("{ broken")
    store.load()
    store.load()
    assert len([p for p in tmp_path.iterdir() if ".damaged-" in p.name]) == 1
