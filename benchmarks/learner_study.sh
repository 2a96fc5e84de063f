#!/usr/bin/env bash
# Learner sample-efficiency study (docs/results.md, "Learner sample efficiency"): Harvest, A3C
# baseline (reward=extrinsic, paper Table values), 5e6 env steps per run, five learner settings:
#   paper_batch  synchronous A2C, the `paper` preset's batch: 1024 envs x 50 steps per update
#   small        synchronous A2C, the `small` preset: 64 envs x 50 steps
#   a3c_cadence  synchronous A2C with A3C's cadence: 8 envs x 20 steps
#   ppo          PPO (4 epochs, clip 0.2) on the `small` preset's batch
#   a3c          optim=a3c, 2 workers x 8 envs, t_max 20 (uses 2 cores)
#   paper_batch_lr4x  paper_batch with 4x the learning rate (square-root scaling for 16x the
#                small batch: the rule docs/results.md tests for GPU users raising num_envs)
# Usage: [REWARD=influence] benchmarks/learner_study.sh SETTING SEED [extra overrides...]
# Each run lands in multirun/learner_study/<SETTING>/ (<SETTING>-<REWARD>/ for another reward
# than the A3C baseline) and resumes when rerun. Run the
# single-threaded settings two at a time on a 2-core machine and `a3c` alone, so wall times
# compare (each job has one core).
set -euo pipefail
setting=$1
seed=$2
shift 2
reward=${REWARD:-extrinsic}
folder=$setting
[[ $reward == extrinsic ]] || folder=$setting-$reward
paper_batch=(budget.num_envs=1024 budget.log_every=102400)
case "$setting" in
  paper_batch) learner=("${paper_batch[@]}") ;;
  paper_batch_lr4x) learner=("${paper_batch[@]}" optim.lr_init=0.00544 optim.lr_end=0.000112) ;;
  small) learner=() ;;
  a3c_cadence) learner=(budget.num_envs=8 optim.rollout_len=20) ;;
  ppo) learner=(optim.algo=ppo) ;;
  a3c) learner=(optim=a3c optim.workers=2) ;;
  *) echo "unknown setting '$setting' (paper_batch, paper_batch_lr4x, small, a3c_cadence, ppo, a3c)" >&2; exit 2 ;;
esac
exec python launch/main.py -m env=harvest "reward=$reward" "seed=range($seed,$((seed + 1)))" \
  budget=small budget.agent_steps=5000000 "${learner[@]}" \
  env.compile=true model.compile=true logger=none \
  "hydra.sweep.dir=multirun/learner_study/$folder" "$@"
