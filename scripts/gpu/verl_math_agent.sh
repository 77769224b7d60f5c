#!/usr/bin/env bash
# The tutorial math agent (ReActAgent + python tool, MathAnswerAsJudge) trained by astuner --backbone=verl
# on the lent GPU machine, at verl_smoke.sh's batch (64 tasks x 4 repeats, 512 GSM8K train rows, 64 test rows).
# Run from the project root on that machine, after ../shared/gpu's chunks are installed (/tmp/gpu-env.sh exists)
# and with .gpu/astuner carried (scripts/gpu/pack_astuner.py). Records go to launcher_record/verl_gpu/;
# the files that matter are copied into $OUT (when set).
set -euo pipefail
source /tmp/gpu-env.sh
A=$PWD/.gpu/astuner SITE=/tmp/site-astuner
if [ ! -d $SITE/agentscope ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE $A/wheels/*.whl
fi
export PYTHONPATH=$PWD:$SITE:$PYTHONPATH PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 RAY_AUTH_MODE=disabled
if [ ! -f /tmp/smollm2/config.json ]; then   # the embedded model, from the carried GGUF parts (about 60 s)
  cat /tmp/gpu-stage/smollm2.gguf.part-* > /tmp/smollm2.gguf
  python3 -c "from pathlib import Path; from astuner.model.embedded import convert_gguf
convert_gguf(Path('/tmp/smollm2.gguf'), Path('/tmp/smollm2'))"
fi
rm -rf launcher_record/verl_gpu   # a retry on the same machine starts afresh
rc=0
timeout --signal=INT --kill-after=60 "${ASTUNER_TIMEOUT:-480}" python3 -m astuner --conf tutorial/example_math_agent/math_agent.yaml --backbone=verl \
  astuner.experiment_name=verl_gpu \
  astuner.model.path=/tmp/smollm2 \
  astuner.task_reader.huggingface_dat_repo.dataset_path=$A/gsm8k \
  astuner.data.train_batch_size=64 astuner.data.max_prompt_length=1024 astuner.data.max_response_length=1024 \
  astuner.rollout.max_model_len=2048 astuner.rollout.max_response_length_in_one_turn=512 \
  astuner.rollout.max_num_seqs=256 astuner.rollout.episode_timeout=300 \
  astuner.optim.lr=1e-6 \
  astuner.trainer_common.total_training_steps=3 astuner.trainer_common.test_freq=3 \
  astuner.trainer_common.val_before_train=true astuner.trainer_common.save_freq=3 \
  "astuner.trainer_common.logger=[console]" \
  actor_rollout_ref.model.use_remove_padding=false \
  +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
  actor_rollout_ref.actor.ppo_mini_batch_size=32 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32 +actor_rollout_ref.rollout.agent.num_workers=2 \
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32 \
  +transfer_queue.backend.SimpleStorage.num_data_storage_units=1 "$@" || rc=$?
R=launcher_record/verl_gpu
cp $R/verl/metrics.jsonl /tmp/astuner_verl_metrics.jsonl 2>/dev/null || true   # for the baseline call
if [ -n "${OUT:-}" ]; then
  for f in astuner.log verl.log verl/verl_config.yaml verl/metrics.jsonl; do
    [ -f $R/$f ] && cp $R/$f "$OUT/$(basename $f)"
  done
  (cd $R && tar czf "$OUT/trajectories.tgz" trajectories 2>/dev/null) || true
fi
python3 scripts/gpu/step_times.py astuner=$R/verl/metrics.jsonl || true
# verl's own GSM8K example at the same batch, on the same machine, then the ratio (BASELINE=1):
if [ "${BASELINE:-0}" = 1 ]; then
  bash /tmp/gpu-stage/verl_smoke.sh > /tmp/verl_smoke.log 2>&1 || true
  [ -n "${OUT:-}" ] && cp /tmp/verl_smoke.log "$OUT/"
  python3 scripts/gpu/step_times.py verl_gsm8k=/tmp/verl_smoke.log astuner_math_agent=/tmp/astuner_verl_metrics.jsonl
fi
exit $rc
