"""The training data: folder scan, captions, kohya repeat folders, buckets, skipped images, the batch plan."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from ssd1b.train.buckets import SDXL_BUCKETS, buckets_for, nearest_bucket, pixels, place
from ssd1b.train.dataset import DatasetError, scan
from ssd1b.train.sampler import BatchPlan
from ssd1b.train.settings import SettingsError, TrainingSettings
from tests.helpers.train_host import write_image


def settings_for(data: Path, **changes: object) -> TrainingSettings:
    values: dict[str, object] = {"resolution": 64, "output_dir": data.parent / "out", "output_name": "lora"}
    values.update(changes)
    return TrainingSettings(data_dir=data, **values)  # type: ignore[arg-type]


def test_sdxl_buckets_at_1024_are_the_published_sizes() -> None:
    assert {(w, h) for h, w in buckets_for(1024)} == set(SDXL_BUCKETS)


@pytest.mark.parametrize("resolution", [512, 768, 1024, 1536])
def test_buckets_are_multiples_of_64_near_the_resolution_area(resolution: int) -> None:
    buckets = buckets_for(resolution)
    assert (resolution, resolution) in buckets
    for height, width in buckets:
        assert height % 64 == 0 and width % 64 == 0
        assert 0.8 < height * width / resolution**2 < 1.2
    assert len(set(buckets)) == len(buckets)


def test_an_image_goes_to_the_bucket_of_the_nearest_aspect_ratio() -> None:
    buckets = buckets_for(1024)
    assert nearest_bucket((1000, 1000), buckets) == (1024, 1024)
    assert nearest_bucket((600, 1400), buckets) == (640, 1536)  # wide
    assert nearest_bucket((1300, 1000), buckets) == (1152, 896)  # a bit tall
    assert nearest_bucket((768, 1365), buckets) == (768, 1344)


def test_placement_covers_the_bucket_and_centres_the_crop() -> None:
    placement = place((1000, 1500), (832, 1216))
    assert placement.resized[0] >= 832 and placement.resized[1] >= 1216
    assert placement.resized == (832, 1248)
    assert placement.crop == (0, 16)
    cond = placement.size_cond(flipped=False)
    assert (cond.original, cond.crop, cond.target) == ((1000, 1500), (0, 16), (832, 1216))
    assert placement.size_cond(flipped=True).crop == (0, 1248 - 1216 - 16)


def test_pixels_are_the_bucket_crop_in_minus_one_to_one_and_flip_mirrors(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", (96, 64))
    with Image.open(path) as image:
        placement = place((64, 96), (64, 64))
        straight, mirrored = pixels(image, placement, False), pixels(image, placement, True)
    assert straight.shape == (3, 64, 64)
    assert float(straight.min()) >= -1.0 and float(straight.max()) <= 1.0
    assert torch.equal(mirrored, straight.flip(-1))
    assert not torch.equal(mirrored, straight)


def test_captions_prefix_repeats_and_folder_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    write_image(data / "plain.png", caption="a cat, sitting\n on a mat ")
    write_image(data / "10_mycat" / "one.png", seed=1, caption="orange cat")
    write_image(data / "10_mycat" / "two.jpg", seed=2)  # no caption file
    write_image(data / "other" / "three.png", seed=3)
    with caplog.at_level(logging.WARNING, logger="ssd1b"):
        dataset = scan(settings_for(data, caption_prefix="sks"))
    by_name = {item.path.name: item for item in dataset.items}
    assert by_name["plain.png"].caption == "sks, a cat, sitting, on a mat"
    assert (by_name["plain.png"].repeats, by_name["plain.png"].folder) == (1, "data")
    assert (by_name["one.png"].caption, by_name["one.png"].repeats) == ("sks, orange cat", 10)
    assert (by_name["two.jpg"].caption, by_name["two.jpg"].caption_source) == ("sks", "prefix")
    assert by_name["three.png"].repeats == 1
    assert dataset.samples_per_epoch == 1 + 10 + 10 + 1
    assert any("two.jpg" in note and "no caption file" in note for note in dataset.notes)
    assert "two.jpg: no caption file" in caplog.text


def test_missing_caption_without_prefix_uses_the_concept_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_image(data / "3_red bike" / "a.png")
    (item,) = scan(settings_for(data)).items
    assert (item.caption, item.caption_source, item.repeats) == ("red bike", "folder", 3)


def test_tag_frequency_per_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_image(data / "5_x" / "a.png", caption="cat, red")
    write_image(data / "5_x" / "b.png", seed=1, caption="cat, blue")
    assert scan(settings_for(data)).tag_frequency() == {"5_x": {"cat": 2, "red": 1, "blue": 1}}


def test_empty_folder_missing_folder_and_no_images(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan(settings_for(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no images"):
        scan(settings_for(tmp_path / "empty"))


def test_unreadable_and_too_small_images_are_skipped_with_a_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_image(data / "good.png", caption="good")
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_image(data / "tiny.png", (16, 16), caption="tiny")
    dataset = scan(settings_for(data))
    assert [item.path.name for item in dataset.items] == ["good.png"]
    assert any("broken.png" in message and "not a readable image" in message for message in dataset.skipped)
    assert any("tiny.png" in message and "too small" in message and "4.0x" in message for message in dataset.skipped)


def test_only_unusable_images_is_an_error_naming_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_image(data / "tiny.png", (8, 8))
    with pytest.raises(DatasetError, match=r"none of the 1 images.*tiny\.png.*too small"):
        scan(settings_for(data))


def test_exif_rotation_swaps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "data" / "rotated.jpg"
    path.parent.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90°
    Image.new("RGB", (128, 64)).save(path, exif=exif)
    (item,) = scan(settings_for(path.parent, resolution=128)).items
    assert item.placement.original == (128, 64)


def test_bad_settings_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="multiple of 64"):
        settings_for(tmp_path, resolution=100)
    with pytest.raises(SettingsError, match="plain file name"):
        settings_for(tmp_path, output_name="../escape")
    with pytest.raises(SettingsError, match="warmup"):
        settings_for(tmp_path, max_train_steps=5, warmup_steps=6)


def test_settings_round_trip_through_json(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, betas=(0.8, 0.99), min_snr_gamma=5.0, work_dir=tmp_path / "w")
    assert TrainingSettings.from_json(settings.to_json()) == settings


def test_batch_plan_is_a_function_of_seed_and_batch_number() -> None:
    buckets = [(64, 64), (64, 64), (64, 128), (64, 64)]
    plan = BatchPlan(buckets, [2, 1, 3, 1], batch_size=2, flip=True, seed=7)
    again = BatchPlan(buckets, [2, 1, 3, 1], batch_size=2, flip=True, seed=7)
    assert plan.batches_per_epoch == 2 + 2  # 4 samples at 64x64, 3 at 64x128 (one short batch)
    assert [again.micro_batch(n) for n in range(12)] == [plan.micro_batch(n) for n in range(12)]
    epoch = plan.epoch(0)
    assert sorted(s.item for batch in epoch for s in batch) == [0, 0, 1, 2, 2, 2, 3]
    for batch in epoch:
        assert len({buckets[s.item] for s in batch}) == 1
    flips = [s.flipped for n in range(40) for s in plan.micro_batch(n)]
    assert 0 < sum(flips) < len(flips)
    assert plan.epoch(1) != plan.epoch(0)
    assert BatchPlan(buckets, [2, 1, 3, 1], 2, True, seed=8).epoch(0) != epoch


def test_no_flip_means_no_flipped_sample() -> None:
    plan = BatchPlan([(64, 64)] * 3, [4, 4, 4], batch_size=3, flip=False, seed=0)
    assert not any(s.flipped for n in range(20) for s in plan.micro_batch(n))
