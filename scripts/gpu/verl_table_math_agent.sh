#!/usr/bin/env bash
# The three-backbone table's job on `--backbone=verl` (verl 0.9.1 on a local Ray, vLLM 0.24 rollout, FSDP actor):
# the tutorial's own workflow (ReActAgent + python tool) on one-digit arithmetic (pinned here), the embedded
# SmolLM2-135M, 32 tasks x 8 episodes per step, lr 3e-5, 20 steps, validation before and after, as
# scripts/gpu/debug_math_agent.sh and trinity_math_agent.sh. Run from the project root on the lent GPU machine
# after ../shared/gpu's chunks are installed (/tmp/gpu-env.sh), with .gpu/astuner carried (scripts/gpu/pack_astuner.py):
#   bash scripts/gpu/verl_table_math_agent.sh start [SECONDS]   # as trinity_math_agent.sh
#   bash scripts/gpu/verl_table_math_agent.sh wait [SECONDS]
# verl's own GPU knobs are the ones verl_math_agent.sh ran with (sdpa attention and no padding removal:
# flash-attn is not carried; the engine at 0.4 of the GPU); astuner's algorithm keys are left as they map.
set -euo pipefail
W=/tmp/verl-run R=launcher_record/verl_gpu
steps=${STEPS:-20}

run() {
  source /tmp/gpu-env.sh
  local A=$PWD/.gpu/astuner SITE=/tmp/site-astuner
  [ -d $SITE/agentscope ] || python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE $A/wheels/*.whl
  export PYTHONPATH=$PWD:$SITE:$PYTHONPATH PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 RAY_AUTH_MODE=disabled
  if [ ! -f /tmp/smollm2/config.json ]; then   # the embedded model, from the carried GGUF parts
    cat /tmp/gpu-stage/smollm2.gguf.part-* > /tmp/smollm2.gguf
    python3 -c "from pathlib import Path; from astuner.model.embedded import convert_gguf
convert_gguf(Path('/tmp/smollm2.gguf'), Path('/tmp/smollm2'))"
  fi
  rm -rf "$R"
  python3 -m astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=verl \
    astuner.experiment_name=verl_gpu astuner.model.path=/tmp/smollm2 \
    astuner.task_reader.arithmetic.difficulty=1 'astuner.rollout.agentscope_workflow=workflow->MathAgentWorkflow' \
    astuner.data.train_batch_size=32 astuner.rollout.max_num_seqs=256 \
    astuner.trainer_common.total_training_steps="$steps" astuner.trainer_common.test_freq="$steps" \
    astuner.trainer_common.save_freq="$steps" astuner.trainer_common.val_before_train=${VAL:-true} \
    "astuner.trainer_common.logger=[console]" \
    actor_rollout_ref.model.use_remove_padding=false \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32 +actor_rollout_ref.rollout.agent.num_workers=2 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32 \
    +transfer_queue.backend.SimpleStorage.num_data_storage_units=1 ${VERL_ARGS:-}
}

source scripts/gpu/background.sh
background_main "$@"
