"""predict_sharded: records come back in input order through the part files, a killed run resumes from its done
items, and a work folder of other inputs is refused. (Two processes: tests/pipelines/genomics/test_vep_command.py.)"""
from __future__ import annotations

import json

import numpy as np
import pytest

from mamba_bio_audio.pipelines.genomics.sharded import predict_sharded, work_dir_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _record(i: int) -> dict:
    return {"values": np.arange(i % 4, dtype=np.float32) / (i + 1), "name": f"item{i}", "score": i / 7, "n": i}


def _write_jsonl(records, tmp) -> None:
    with open(tmp, "w") as fh:
        for r in records:
            fh.write(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()}) + "\n")


def _expected(n: int) -> list[dict]:
    return [json.loads(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                   for k, v in _record(i).items()})) for i in range(n)]


def _run(out, items, compute, **kw):
    return predict_sharded(items, compute, batch_size=3, outputs={out: _write_jsonl}, fingerprint={"p": 1},
                           progress=False, **kw)


def test_records_merge_in_input_order_with_their_types(tmp_path):
    out = tmp_path / "out.jsonl"
    items = list(range(11))
    run = _run(out, items, lambda batch: [_record(i) for i in batch])
    assert (run.items, run.resumed, run.computed, run.world_size) == (11, 0, 11, 1)
    assert [json.loads(line) for line in out.read_text().splitlines()] == _expected(11)
    assert not work_dir_for(out).exists()  # removed after the merge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_killed_run_resumes_from_its_done_items(tmp_path):
    out = tmp_path / "out.jsonl"
    items = list(range(11))
    seen = []

    def dies_at_7(batch):
        if 7 in batch:
            raise RuntimeError("killed")
        seen.extend(batch)
        return [_record(i) for i in batch]

    with pytest.raises(RuntimeError, match="killed"):
        _run(out, items, dies_at_7)
    assert not out.exists()  # nothing under the final name
    assert seen == [0, 1, 2, 3, 4, 5]
    seen.clear()
    run = _run(out, items, lambda batch: seen.extend(batch) or [_record(i) for i in batch])
    assert (run.resumed, run.computed) == (6, 5)
    assert seen == [6, 7, 8, 9, 10]  # only what the killed run had not done
    assert [json.loads(line) for line in out.read_text().splitlines()] == _expected(11)


def test_work_folder_of_other_inputs_is_refused_unless_restart(tmp_path):
    out = tmp_path / "out.jsonl"

    def dies(batch):
        if 4 in batch:
            raise RuntimeError("killed")
        return [_record(i) for i in batch]

    with pytest.raises(RuntimeError):
        _run(out, list(range(8)), dies)
    parts = sorted(p.name for p in work_dir_for(out).iterdir())
    with pytest.raises(ValueError, match=r"out\.jsonl\.work: refused: it holds the partial results of a run with "
                                         r"other inputs"):
        predict_sharded(list(range(8)), dies, batch_size=3, outputs={out: _write_jsonl},
                        fingerprint={"p": 2}, progress=False)
    assert sorted(p.name for p in work_dir_for(out).iterdir()) == parts  # untouched
    run = predict_sharded(list(range(8)), lambda b: [_record(i) for i in b], batch_size=3,
                          outputs={out: _write_jsonl}, fingerprint={"p": 2}, progress=False, restart=True)
    assert run.resumed == 0 and [json.loads(x) for x in out.read_text().splitlines()] == _expected(8)


def test_foreign_folder_under_the_work_name_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    work_dir_for(out).mkdir()
    (work_dir_for(out) / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a work folder of mamba-bio-audio"):
        _run(out, [0, 1], lambda b: [_record(i) for i in b], restart=True)
    assert (work_dir_for(out) / "mine.txt").read_text() == "keep"
