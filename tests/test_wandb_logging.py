"""W&B run logging, read back from the offline run file: x-axis, summaries, tags, group, job type
and a flat config the UI can group by."""

import json
import math

import pytest
from wandb_records import records, run_files, summary

from si.train.logging import SUMMARIES, MetricsTable, WandbLogger
from si.wandb_names import wandb_key

CONFIG = {"env": {"name": "harvest", "map": "default"}, "reward": {"name": "influence", "beta": 0.224}, "seed": 3}


@pytest.fixture()
def run_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = tmp_path / "harvest_sweep"
    job = sweep / "0_harvest-influence-s3"
    job.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}\n")  # what Hydra writes in a sweep folder
    log = WandbLogger(job, CONFIG, "harvest-influence-s3", "harvest-influence-abcd1234", "p", None, ["extra"],
                      "offline")
    for steps, reward in ((1000, -50.0), (2000, 120.0), (3000, 80.0)):
        log.log({"agent_steps": steps, "collective_reward": reward, "influence_mean": math.nan})
    log.finish()
    (path,) = run_files(job)
    return path


def test_run_is_tagged_grouped_typed_and_its_config_flat(run_file):
    run = next(r.run for r in records(run_file) if r.WhichOneof("record_type") == "run")
    assert run.run_group == "harvest-influence-abcd1234" and run.job_type == "harvest"
    assert {"extra", "sweep:harvest_sweep"} <= set(run.tags)
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["env.name"] == "harvest" and config["reward.name"] == "influence"
    assert config["reward.beta"] == 0.224 and config["sweep"] == "harvest_sweep"


def test_metrics_use_env_steps_as_x_axis_and_summaries_keep_final_and_best(run_file):
    metrics = [r.metric for r in records(run_file) if r.WhichOneof("record_type") == "metric"]
    by_name = {m.name or m.glob_name: m for m in metrics}
    assert by_name["*"].step_metric == "agent_steps"
    for name, ops in SUMMARIES.items():
        m = by_name[wandb_key(name)]
        assert m.step_metric == "agent_steps"
        for op in ops.split(","):
            assert getattr(m.summary, op), (name, op)
    assert summary(run_file)["charts/collective_reward"] == {"last": 80, "max": 120}


def test_catch_up_logs_only_rows_wandb_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    table = MetricsTable(tmp_path / "metrics.csv")
    for steps in (100, 200, 300):
        table.append({"agent_steps": steps, "collective_reward": steps / 10})
    log = WandbLogger(tmp_path, CONFIG, "r", "g", "p", None, [], "offline")
    assert log.catch_up(table) == 3  # a new offline file starts at step 0: the whole history
    log.finish()
