import contextlib
import json
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssd1b import checkpoint
from ssd1b.checkpoint import MAX_HEADER_BYTES, HeaderError, parse_header, read_header
from tests import synthetic


@pytest.fixture(autouse=True, params=["orjson", "json"])
def json_loader(request, monkeypatch):
    """Every test runs with both loaders: orjson (inside A1111) and the standard library (bare CLI)."""
    if request.param == "json":
        monkeypatch.setattr(checkpoint, "_orjson", None)
    elif checkpoint._orjson is None:
        pytest.fail("orjson should be installed in the test environment (gradio depends on it)")


def raw_file(tmp_path, document, extra: bytes = b"", name="x.safetensors"):
    body = json.dumps(document).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(body)) + body + extra)
    return path


def test_reads_the_header_of_a_sparse_4_47_gb_ssd_1b_without_reading_data(tmp_path):
    shapes = synthetic.full_checkpoint(synthetic.ssd_1b_unet())
    path = synthetic.write_sparse(tmp_path / "ssd.safetensors", shapes)
    header = read_header(path)
    assert header.shapes() == shapes
    assert not header.truncated
    assert header.file_bytes == path.stat().st_size
    assert round(header.file_bytes / 1e9, 2) == 4.47  # the real SSD-1B-A1111.safetensors size
    assert path.stat().st_blocks * 512 < 1_000_000  # sparse: only the header occupies disk


def test_truncated_download_is_reported_not_raised(tmp_path):
    shapes = synthetic.full_checkpoint(synthetic.ssd_1b_unet())
    path = synthetic.write_sparse(tmp_path / "part.safetensors", shapes, data_bytes=1_790_000_000)
    header = read_header(path)
    assert header.truncated
    assert header.declared_bytes > header.file_bytes


def test_metadata_is_kept(tmp_path):
    path = synthetic.write_sparse(tmp_path / "m.safetensors", {"a": (2, 2)}, metadata={"modelspec.title": "x"})
    assert read_header(path).metadata == {"modelspec.title": "x"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "not an object"),
        ({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 2]}}, "unknown dtype"),
        ({"a": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}, "invalid shape"),
        ({"a": {"dtype": "F16", "shape": [1.5], "data_offsets": [0, 2]}}, "invalid shape"),
        ({"a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 0]}}, "invalid data offsets"),
        ({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0]}}, "not a tensor description"),
        ({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 2]}}, "need 6"),
        (
            {
                "a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]},
            },
            "overlaps",
        ),
        ({"__metadata__": {"k": 1}}, "__metadata__"),
        ({"a": "x"}, "not a tensor description"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(tmp_path, document, message):
    path = raw_file(tmp_path, document, extra=b"\0" * 16)
    with pytest.raises(HeaderError, match=message):
        read_header(path)


def test_duplicate_names_are_refused():
    entry = '{"dtype": "U8", "shape": [1], "data_offsets": [%d, %d]}'
    raw = ('{"a": ' + entry % (0, 1) + ', "a": ' + entry % (1, 2) + "}").encode()
    with pytest.raises(HeaderError, match="twice"):
        parse_header(raw, 1000)


def test_offsets_out_of_order_in_the_json_are_fine_when_the_layout_is_sound(tmp_path):
    document = {
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
    }
    header = read_header(raw_file(tmp_path, document, extra=b"\0" * 4))
    assert header.data_bytes == 4
    assert not header.truncated


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes"),
        (b"\x01\x02", "only 2 bytes"),
        (struct.pack("<Q", 0), "empty header"),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "over the"),
        (struct.pack("<Q", 5000) + b"{}", "truncated"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "UTF-8"),
        (struct.pack("<Q", 4) + b"{a:1", "malformed"),
        (struct.pack("<Q", 2000) + b"[" * 1000 + b"]" * 1000, "nested too deeply|not an object"),
    ],
)
def test_broken_files_are_refused(tmp_path, content, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(HeaderError, match=message):
        read_header(path)


def test_a_huge_declared_header_is_refused_before_any_allocation(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    tracemalloc.start()
    with pytest.raises(HeaderError):
        read_header(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_unreadable_path_is_a_header_error(tmp_path):
    with pytest.raises(HeaderError, match="cannot read"):
        read_header(tmp_path / "missing.safetensors")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.binary(max_size=4096))
def test_random_bytes_raise_only_header_error(tmp_path, data):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    with contextlib.suppress(HeaderError):
        read_header(path)


def _valid_header() -> bytes:
    head, _ = synthetic.header_bytes({"a": (4, 4), "b": (3,), "c": (2, 1)}, dtype="F32", metadata={"k": "v"})
    return head


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(_valid_header()) - 1),
    byte=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=len(_valid_header())),
)
def test_corrupted_headers_raise_only_header_error_and_stay_bounded(position, byte, cut):
    corrupted = bytearray(_valid_header())
    corrupted[position] = byte
    body = bytes(corrupted[8:cut]) if cut > 8 else b""
    tracemalloc.start()
    try:
        parse_header(body, 1_000)
    except HeaderError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 5_000_000


@settings(max_examples=200, deadline=None)
@given(
    document=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
        max_leaves=20,
    )
)
def test_arbitrary_json_raises_only_header_error(document):
    with contextlib.suppress(HeaderError):
        parse_header(json.dumps(document).encode(), 10_000)
