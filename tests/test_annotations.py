"""The annotation parser on the real K400 val CSV and on the other official variants."""

import json

import pytest

from data_prep.annotations import AnnotationError, class_names, read_annotations


def test_real_k400_val_csv(testdata):
    rows = read_annotations(testdata / "annotations" / "activitynet_kinetics-400_val.csv")
    assert len(rows) == 19906
    label_map_file = testdata / "annotations" / "deepmind_kinetics-i3d__label_map_400.txt"
    label_map = label_map_file.read_text().splitlines()
    assert class_names(rows) == label_map and len(label_map) == 400
    assert {r.split for r in rows} == {"val"}
    # A quoted multi-word label on a '-'-prefixed id, as in the file: "air drumming",--nQbRBEz2s,104,114
    row = next(r for r in rows if r.youtube_id == "--nQbRBEz2s")
    assert (row.label, row.time_start, row.time_end) == ("air drumming", 104.0, 114.0)
    assert row.clip_stem == "--nQbRBEz2s_000104_000114"
    assert sum(r.youtube_id.startswith("-") for r in rows) == 644
    assert len({r.key for r in rows}) == 19906


def test_k700_style_csv_without_is_cc_and_validate_split(tmp_path):
    path = tmp_path / "k700.csv"
    path.write_text('label,youtube_id,time_start,time_end,split\n'
                    '"playing guitar",-abcdefghij,3,13,validate\n'
                    '"playing guitar",-abcdefghij,20,30,validate\n'
                    'yoga,ABCDEFGHIJK,0,10,train\n')
    rows = read_annotations(path)
    assert [r.split for r in rows] == ["val", "val", "train"]
    # The same id with two windows stays two clips.
    assert rows[0].key != rows[1].key and rows[0].clip_stem != rows[1].clip_stem
    assert class_names(rows) == ["playing guitar", "yoga"]


def test_test_csv_without_labels(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("youtube_id,time_start,time_end,split\n_abcdefghij,1,11,test\n")
    (row,) = read_annotations(path)
    assert row.label is None and row.split == "test" and class_names([row]) == []


def test_json_form(tmp_path):
    path = tmp_path / "k400_val.json"
    path.write_text(json.dumps({
        "-0xUHgSA8uQ": {"annotations": {"label": "riding a bike", "segment": [12.5, 22.5]},
                        "duration": 10.0, "subset": "validate", "url": "https://youtu.be/-0xUHgSA8uQ"},
        "b0xUHgSA8uQ": {"annotations": {"label": "yoga", "segment": [0.0, 10.0]}, "subset": "train"},
    }))
    rows = read_annotations(path)
    assert [(r.youtube_id, r.time_start, r.split, r.label) for r in rows] == [
        ("-0xUHgSA8uQ", 12.5, "val", "riding a bike"), ("b0xUHgSA8uQ", 0.0, "train", "yoga")]
    assert rows[0].clip_stem == "-0xUHgSA8uQ_000012_000022"


@pytest.mark.parametrize("content,message", [
    ("label,ytid,start,end\nyoga,ABCDEFGHIJK,0,10\n", r"bad\.csv:1: header .* lacks \['youtube_id'"),
    ("label,youtube_id,time_start,time_end,split\nyoga,ABCDEFGHIJK,zero,10,train\n",
     r"bad\.csv:2: time_start 'zero' is not a number"),
    ("label,youtube_id,time_start,time_end,split\nyoga,short,0,10,train\n",
     r"bad\.csv:2: youtube_id 'short' is not 11 characters"),
    ("label,youtube_id,time_start,time_end,split\nyoga,ABCDEFGHIJK,0\n", r"bad\.csv:2: expected 5 fields"),
])
def test_malformed_csv_names_file_line_and_expectation(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=message):
        read_annotations(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"ABCDEFGHIJK": {"annotations": {"label": "yoga"}}}')
    with pytest.raises(AnnotationError, match=r"entry 'ABCDEFGHIJK': expected .*segment"):
        read_annotations(path)
