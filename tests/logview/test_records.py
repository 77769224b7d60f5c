"""ExperimentRecords: what each page's API returns, read from a folder the real recorder wrote."""

from __future__ import annotations

import json
import os

import pytest

from astuner.logview.records import ExperimentRecords, RecordsNotFound
from tests.logview.conftest import BIG_TOKENS, XSS


@pytest.fixture(scope="module")
def rec(records):
    return ExperimentRecords(records)


def test_overview_lists_steps_metrics_config_and_tokenizer(rec, records):
    ov = rec.overview()
    assert ov["name"] == "viewer" and "experiment_name: viewer" in ov["config"]
    assert [(s["kind"], s["step"]) for s in ov["steps"]] == [("val", 0), ("train", 1), ("train", 2), ("val", 2)]
    train = [m for m in ov["metrics"] if m["phase"] == "train"]
    assert [m["reward_mean"] for m in train] == [0.4, 0.6]
    assert train[0]["reward_std"] is None  # NaN was recorded as null
    assert ov["tokenizer"] == str(records / "tokenizer" / "tokenizer.json")
    assert ov["running"] is False  # nobody holds the folder's lock


def test_overview_reports_a_live_run(records, tmp_path):
    import fcntl

    with (records / ".lock").open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            assert ExperimentRecords(records).overview()["running"] is True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def test_step_groups_sorts_filters_and_pages(rec):
    page = rec.step("train", 1)
    assert page["total"] == 7 and page["counts"] == {"ok": 6, "failed": 1, "timeout": 0}
    assert page["groups"]["task-a"] == {"n": 3, "reward_mean": pytest.approx(1 / 3), "zero_signal": False}
    tasks = [e["task_id"] for e in page["episodes"]]
    assert tasks == sorted(tasks)  # sorted by task: a group's episodes are adjacent
    by_adv = rec.step("train", 1, sort="advantage", descending=True)["episodes"]
    assert by_adv[0]["episode_id"] == "s1-a-r0" and by_adv[0]["advantage"] == pytest.approx(1.15)
    assert by_adv[-1]["advantage"] is None  # episodes without an advantage sort last
    assert [e["episode_id"] for e in rec.step("train", 1, status="failed")["episodes"]] == ["s1-fail-r0"]
    assert [e["episode_id"] for e in rec.step("train", 1, flag="mad")["episodes"]] == ["s1-mad-r0"]
    assert [e["episode_id"] for e in rec.step("train", 1, flag="drift")["episodes"]] == ["s1-tool-r0"]
    assert [e["episode_id"] for e in rec.step("train", 1, query="server is down")["episodes"]] == ["s1-fail-r0"]
    failed = rec.step("train", 1, status="failed")["episodes"][0]
    assert failed["error"] == "RuntimeError: the tool server is down"  # the traceback's last line
    big = rec.step("train", 2, offset=990, limit=100)
    assert big["total"] == big["matched"] == 1000 and len(big["episodes"]) == 10


def test_step_index_is_rebuilt_when_the_file_changes(records, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(records, copy)
    rec = ExperimentRecords(copy)
    assert rec.step("train", 1)["total"] == 7
    path = copy / "trajectories" / "step_000001.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    os.utime(path, ns=(1, 1))
    assert rec.step("train", 1)["total"] == 2


def test_backbone_worker_files_make_one_step(records, tmp_path, smollm2_tokenizer):
    """verl/Trinity workers append to one file each per step; the viewer shows them as one step."""
    import shutil

    from astuner.backbone.spec import record_episode
    from tests.logview.conftest import _episode

    copy = tmp_path / "copy"
    shutil.copytree(records, copy)
    traj = copy / "trajectories"

    def episode(eid, task, reward):
        return _episode(smollm2_tokenizer, eid, task, reward, None, question="1+1?", answer="2")

    for i in range(3):
        record_episode(traj, "verl", 3, episode(f"s3-t{i}-r0", f"t{i}", 1.0))
    mine = traj / f"verl_step_000003.{os.getpid()}.jsonl"
    mine.rename(traj / "verl_step_000003.1.jsonl")  # as if another worker process wrote these three
    record_episode(traj, "verl", 3, episode("s3-t9-r0", "t9", 0.0))
    record_episode(traj, "verl_val", 3, episode("s3-v0-r0", "v0", 1.0))
    with mine.open("a") as f:
        f.write('{"episode_id": "s3-half')  # a worker is appending this line right now
    rec = ExperimentRecords(copy)
    assert [(s["kind"], s["step"]) for s in rec.overview()["steps"]][-2:] == [("train", 3), ("val", 3)]
    page = rec.step("train", 3)
    assert page["total"] == 4 and page["groups"]["t9"]["reward_mean"] == 0.0
    assert rec.episode_page("train", 3, "s3-t9-r0")["summary"]["task_id"] == "t9"
    assert rec.episode_page("train", 3, "s3-t1-r0")["summary"]["task_id"] == "t1"
    assert rec.step("val", 3)["total"] == 1
    # a verl run has no astuner metrics.jsonl: the charts read verl's file logger instead
    (copy / "metrics.jsonl").unlink()
    (copy / "verl").mkdir()
    rows = [
        {"step": 0, "data": {"val-core/astuner/reward/mean@1": 0.25}},
        {"step": 1, "data": {"critic/score/mean": 0.5, "timing_s/step": 55.8, "timing_s/gen": 8.1}},
    ]
    (copy / "verl" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rec.metrics() == [
        {"step": 0, "phase": "validation", "val/reward_mean": 0.25},
        {"step": 1, "phase": "train", "reward_mean": 0.5, "step_seconds": 55.8},
    ]


def test_episode_page_has_calls_with_timings_and_samples(rec):
    ep = rec.episode_page("train", 1, "s1-tool-r0")
    assert [c["index"] for c in ep["calls"]] == [0, 1]
    assert ep["calls"][0]["start_s"] == 0.0 and ep["calls"][1]["start_s"] == pytest.approx(1.5)
    assert ep["calls"][1]["seconds"] == pytest.approx(0.5) and ep["calls"][1]["drift"] == 2
    assert ep["calls"][1]["messages"][-1]["role"] == "tool"
    assert ep["samples"][0]["call_indices"] == [0, 1]
    assert "prompt_ids" not in json.dumps(ep)  # token arrays come per sample


def test_sample_page_tokens_masks_logprobs_and_markers(rec, smollm2_tokenizer):
    sm = rec.sample_page("train", 1, "s1-tool-r0", 0)
    t = sm["tokens"]
    n = len(t["id"])
    assert len(t["text"]) == len(t["mask"]) == len(t["logprob"]) == n
    assert t["mask"][: sm["prompt_length"]] == [0] * sm["prompt_length"]
    assert all(lp is None for lp, m in zip(t["logprob"], t["mask"], strict=True) if not m)
    assert {lp for lp, m in zip(t["logprob"], t["mask"], strict=True) if m} == {-0.05, -2.5}
    assert "".join(t["text"][sm["prompt_length"] :]).startswith("<tool_call>")
    first, merge = sm["markers"]
    assert first["position"] == sm["prompt_length"] and first["call"] == 0 and not first["merge"]
    assert merge["call"] == 1 and merge["merge"] and merge["drift"] == 2 and merge["spliced"] == 1
    assert t["mask"][merge["position"]] == 1 and t["mask"][merge["position"] - 1] == 0


def test_big_sample_is_served_whole(rec):
    sm = rec.sample_page("train", 2, "s2-big-r0", 0)
    assert len(sm["tokens"]["id"]) == sm["prompt_length"] + BIG_TOKENS


def test_text_is_returned_verbatim_for_the_page_to_escape(rec):
    ep = rec.episode_page("train", 1, "s1-xss-r0")
    assert ep["calls"][0]["response_text"] == XSS and XSS in ep["error"]


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.step("train", 9),
        lambda r: r.step("nope", 1),
        lambda r: r.step("train", 1, sort="bogus"),
        lambda r: r.episode("train", 1, "missing"),
        lambda r: r.sample_page("train", 1, "s1-a-r0", 5),
    ],
)
def test_missing_things_are_not_found(rec, call):
    with pytest.raises(RecordsNotFound):
        call(rec)


def test_without_a_tokenizer_ids_are_shown(records, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(records, copy, ignore=shutil.ignore_patterns("tokenizer"))
    rec = ExperimentRecords(copy)
    assert rec.sample_page("train", 1, "s1-a-r0", 0)["tokens"]["text"] is None
    assert "no tokenizer" in rec.overview()["tokenizer"]
