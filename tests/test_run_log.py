"""The run's log on its own (fastgan/run_log.py): metrics.jsonl lines, the ranks that
write nothing, and the truncation before a resume."""
import json

from fastgan import run_log


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_each_record_is_one_flushed_json_line(tmp_path):
    log = run_log.RunLog(str(tmp_path), 0, 10, writes=True, tensorboard=False, progress=False)
    log.write({"step": 0, "time": 0.0, "w1": 1.5})
    assert lines(log.path) == [{"step": 0, "time": 0.0, "w1": 1.5}]  # readable before close
    log.advance()
    log.write({"step": 1, "time": 0.1, "wasserstein": 0.25})
    log.close()
    assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [0, 1]


def test_a_rank_that_does_not_write_leaves_no_file(tmp_path):
    log = run_log.RunLog(str(tmp_path), 0, 10, writes=False, tensorboard=True, progress=True)
    log.write({"step": 1, "wasserstein": 0.5})
    log.pictures(None)  # no board on such a rank: nothing is drawn
    log.close()
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()


def test_truncate_keeps_the_lines_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (0, 10, 20, 30)) + "\n")
    run_log.truncate(str(tmp_path), 20)
    assert [r["step"] for r in lines(path)] == [0, 10, 20]
    run_log.truncate(str(tmp_path), 0)  # a run resumed at step 0 writes its start again
    assert lines(path) == []
    run_log.truncate(str(tmp_path / "nothing here"), 5)  # no log yet: nothing to do
