"""Local jsonl/parquet task files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astuner.task_reader import RowFields, TaskReaderError
from astuner.task_reader.dataset_file import DatasetFileReader


def test_gsm8k_jsonl_maps_question_and_ground_truth(gsm8k_dir):
    reader = DatasetFileReader(str(gsm8k_dir / "train.jsonl"), str(gsm8k_dir / "test.jsonl"), RowFields())
    train, val = reader.get_training_tasks(), reader.get_validation_tasks()
    assert (len(train), len(val)) == (7473, 1319)
    first = train[0]
    assert first.task_id == "train-0" and first.main_query.startswith("Natalia sold clips")
    assert first.metadata["ground_truth"] == "72" and first.metadata["answer"].endswith("#### 72")
    assert val[0].task_id == "validation-0"
    # thousands separators in GSM8K gold answers are removed; all gold answers are integers
    assert all(t.metadata["ground_truth"].lstrip("-").isdigit() for t in train + val)


def test_parquet_and_custom_fields(tmp_path):
    path = tmp_path / "tasks.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "prompt": ["p1", "p2"], "solution": ["1", "2"]}), path)
    reader = DatasetFileReader(str(path), None, RowFields(query="prompt", answer="solution", task_id="id"))
    tasks = reader.get_training_tasks()
    assert [(t.task_id, t.main_query, t.metadata["ground_truth"]) for t in tasks] == [
        ("a", "p1", "1"),
        ("b", "p2", "2"),
    ]
    assert reader.get_validation_tasks() == []


def test_no_answer_field(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"question": "q"}\n')
    (task,) = DatasetFileReader(str(path), None, RowFields(answer=None)).get_training_tasks()
    assert "ground_truth" not in task.metadata


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ('{"question": "q", "answer": "1"}\n{"question": \n', RowFields(), r"t.jsonl:2: invalid JSON"),
        (
            '{"q": "x", "answer": "1"}\n',
            RowFields(),
            r"row 0 has no field 'question' .*its fields are \['answer', 'q'\]",
        ),
        ('{"question": "x"}\n', RowFields(), r"row 0 has no field 'answer' \(astuner.task_reader.answer_field"),
        ('["not", "an", "object"]\n', RowFields(), r"row 0 is list, expected a JSON object"),
        ('{"question": "x", "answer": "1"}\n', RowFields(task_id="uid"), r"no field 'uid'"),
    ],
)
def test_bad_rows_give_one_line_errors(tmp_path, content, fields, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(TaskReaderError, match=message) as e:
        DatasetFileReader(str(path), None, fields).get_training_tasks()
    assert "\n" not in str(e.value)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(TaskReaderError, match="not a readable parquet file"):
        DatasetFileReader(str(path), None, RowFields()).get_training_tasks()
