"""The append-only metrics table and the progress line."""

import math

from si.train.logging import MetricsTable, progress_line


def test_metrics_table_appends_resumes_at_a_checkpoint_and_reads_back(tmp_path):
    table = MetricsTable(tmp_path / "metrics.csv")
    assert table.last_row() == {}
    for steps in (100, 200, 300):
        table.append({"agent_steps": steps, "collective_reward": steps / 10, "influence_mean": math.nan})
    reopened = MetricsTable(tmp_path / "metrics.csv")
    assert reopened.columns == ["agent_steps", "collective_reward", "influence_mean"]
    assert reopened.resume_at(200, interval=100) == 2  # rows logged after the checkpoint are dropped
    reopened.append({"agent_steps": 300, "collective_reward": 31.0, "influence_mean": 0.5})
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["agent_steps", "100", "200", "300"]
    assert reopened.last_row() == {"agent_steps": 300.0, "collective_reward": 31.0, "influence_mean": 0.5}


def test_progress_line_shows_steps_speed_reward_influence_eta():
    row = {"agent_steps": 500, "env_steps_per_s": 1234.0, "collective_reward": 12.5, "influence_mean": 0.25}
    line = progress_line(row, 1000, eta_s=90)
    assert "500/1,000" in line and "env-steps/s 1,234" in line and "12.5" in line and "influence 0.25 " in line
    assert "ETA 1.5 min" in line
    small = progress_line({**row, "influence_mean": 3.2e-5}, 1000, eta_s=90)
    assert "influence 3.2e-05" in small  # small influence values stay readable


def test_progress_line_before_the_first_episode_says_so():
    row = {"agent_steps": 500, "env_steps_per_s": 10.0, "collective_reward": math.nan}
    line = progress_line(row, 1000, eta_s=90)
    assert "no episode finished yet" in line and "nan" not in line
    later = progress_line({**row, "episodes": 1024}, 1000, eta_s=90)  # envs that end their episodes together
    assert "no episode ended in this interval" in later and "yet" not in later
