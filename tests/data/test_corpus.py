import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colossus.data.corpus import read_corpus
from colossus.errors import ColossusError


def test_reads_txt_jsonl_and_parquet_in_order(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "second"}) + "\n\n" + json.dumps({"text": "third"}) + "\n")
    pq.write_table(pa.table({"text": ["fourth", None, "fifth"]}), tmp_path / "c.parquet")
    (tmp_path / "ignored.csv").write_text("x")
    assert list(read_corpus(tmp_path)) == ["first document", "second", "third", "fourth", "fifth"]


def test_other_field_name(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"body": "hello"}) + "\n")
    assert list(read_corpus(tmp_path / "d.jsonl", text_field="body")) == ["hello"]


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", "{not json}\n", "line 1: not JSON"),
    ("nofield.jsonl", '{"body": "x"}\n', "no string field 'text'"),
    ("bad.parquet", "not parquet at all", "not a parquet file"),
])
def test_unreadable_files_name_the_problem(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ColossusError, match=message):
        list(read_corpus(tmp_path / name))


def test_binary_txt_and_missing_paths(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ColossusError, match="not UTF-8"):
        list(read_corpus(tmp_path / "bin.txt"))
    with pytest.raises(ColossusError, match="does not exist"):
        list(read_corpus(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ColossusError, match="no .txt"):
        list(read_corpus(tmp_path / "empty"))


def test_parquet_without_the_column(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "p.parquet")
    with pytest.raises(ColossusError, match="no column 'text'"):
        list(read_corpus(tmp_path / "p.parquet"))
