import contextlib
import gc
import json
import math
import struct
import tracemalloc
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssd1b import checkpoint
from ssd1b.checkpoint import MAX_HEADER_BYTES, HeaderError, parse_header, read_header
from ssd1b.inspect import inspect_file
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


def test_a_hole_in_the_data_part_is_refused_as_safetensors_refuses_it(tmp_path):
    document = {"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}
    with pytest.raises(HeaderError, match="bytes 0-2 of the data part belong to no tensor"):
        read_header(raw_file(tmp_path, document, extra=b"\0" * 4))


def test_two_equal_entries_under_one_name_are_read_as_safetensors_reads_them():
    entry = '{"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}'
    raw = ('{"a": ' + entry + ', "a": ' + entry + "}").encode()
    header = parse_header(raw, 8 + len(raw) + 2)
    assert (header.names, header.truncated, header.surplus_bytes) == (["a"], False, 0)


def test_a_repeated_name_that_hides_the_last_tensor_is_named_not_blamed_on_the_size():
    entry = '{"dtype": "U8", "shape": [%d], "data_offsets": [%d, %d]}'
    raw = ('{"a": ' + entry % (1, 3, 4) + ', "b": ' + entry % (2, 1, 3) + ', "a": ' + entry % (1, 0, 1) + "}").encode()
    with pytest.raises(HeaderError, match="twice"):
        parse_header(raw, 8 + len(raw) + 4)


def test_bytes_after_the_declared_data_make_the_report_say_damaged(tmp_path):
    shapes = synthetic.full_checkpoint(synthetic.vega_unet())
    _, declared = synthetic.header_bytes(shapes)
    path = synthetic.write_sparse(tmp_path / "joined.safetensors", shapes, data_bytes=declared + 1_000_000)
    report = inspect_file(path)
    assert (report.ok, report.family) == (False, "segmind-vega")
    assert report.error.startswith("damaged: 1.00 MB after the data the header declares")
    assert "refuses to load" in report.error


def test_mixed_dtypes_are_counted_per_dtype(tmp_path):
    shapes, dtypes = synthetic.with_single_file_extras(synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    path = synthetic.write_sparse(tmp_path / "mixed.safetensors", shapes, dtypes=dtypes)
    header = read_header(path)
    assert header.names[0] == synthetic.POSITION_IDS  # widest dtype first: the names are not sorted overall
    totals = header.bytes_by_dtype()
    assert totals["I64"] == 8 * 77
    assert totals["I64"] + totals["F16"] == header.data_bytes
    assert inspect_file(path).dtype == "fp16"


def test_the_collector_is_paused_only_during_a_read_and_left_as_it_was(tmp_path):
    path = synthetic.write_sparse(tmp_path / "ssd.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    seen = []
    original = checkpoint._parse_tensors

    def spy(document):
        seen.append(gc.isenabled())
        return original(document)

    with mock.patch.object(checkpoint, "_parse_tensors", spy):
        read_header(path)
        assert gc.isenabled()
        gc.disable()
        try:
            read_header(path)
            assert not gc.isenabled()
        finally:
            gc.enable()
    assert seen == [False, False]


NATURAL = st.integers(min_value=0, max_value=6)
ODD_JSON = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
    | st.lists(st.integers(min_value=0, max_value=3), max_size=3)
    | st.dictionaries(st.sampled_from(["dtype", "shape"]), st.integers(0, 2), max_size=2)
)


@st.composite
def tensor_entry(draw):
    """A valid entry, or one with a single field (or the whole entry) replaced by an odd JSON value."""
    dtype = draw(st.sampled_from(sorted(checkpoint.DTYPE_BYTES)))
    shape = draw(st.lists(NATURAL, max_size=3))
    begin = draw(st.integers(min_value=0, max_value=50))
    end = begin + math.prod(shape) * checkpoint.DTYPE_BYTES[dtype]
    entry = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    corruption = draw(st.sampled_from([None, None, "dtype", "shape", "dim", "data_offsets", "pair", "entry"]))
    if corruption == "entry":
        return draw(ODD_JSON)
    if corruption == "dim" and shape:
        shape[draw(st.integers(0, len(shape) - 1))] = draw(ODD_JSON)
    elif corruption == "pair":
        entry["data_offsets"] = [begin, end, *draw(st.lists(NATURAL, max_size=1))][: draw(st.integers(0, 3))]
    elif corruption in entry:
        entry[corruption] = draw(ODD_JSON)
    return entry


@settings(max_examples=500, deadline=None)
@given(entries=st.lists(tensor_entry(), max_size=6))
def test_the_column_check_accepts_exactly_what_the_per_tensor_check_accepts(entries):
    document = checkpoint._loads(json.dumps({f"t{i}": entry for i, entry in enumerate(entries)}).encode())
    try:
        expected = [checkpoint._parse_tensor(name, entry) for name, entry in document.items()]
    except HeaderError:
        expected = None
    if expected is None:
        with pytest.raises(HeaderError):
            checkpoint._parse_tensors(document)
        return
    columns = checkpoint._parse_tensors(document)
    rows = zip(columns.dtypes, map(tuple, columns.shapes), columns.begins, columns.ends, strict=True)
    assert [checkpoint.TensorInfo(*row) for row in rows] == expected
    assert columns.numels == [info.numel for info in expected]
    runs = [(dtype, start, stop) for dtype, start, stop in columns.dtype_runs for _ in range(stop - start)]
    assert [dtype for dtype, *_ in runs] == columns.dtypes


@pytest.mark.parametrize("escape", ["\\udcff", "\\ud83d", "\\uDFFF x", "\\ud83dx"])
def test_a_lone_surrogate_escape_is_refused_as_safetensors_refuses_it(escape):
    raw = ('{"a' + escape + '": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}').encode()
    with pytest.raises(HeaderError, match=r"malformed header: .*surrogate"):
        parse_header(raw, 8 + len(raw) + 1)


def test_a_surrogate_pair_and_an_escaped_backslash_are_fine():
    raw = b'{"a\\ud83d\\ude00 \\\\udcff": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    header = parse_header(raw, 8 + len(raw) + 1)
    assert header.names == ["a\U0001f600 \\udcff"]
