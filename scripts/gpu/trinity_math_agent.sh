#!/usr/bin/env bash
# The three-backbone table's job trained by `astuner --backbone=trinity --with-ray` on the lent GPU machine: the
# tutorial's own workflow (ReActAgent + python tool) on one-digit arithmetic (pinned here), the embedded
# SmolLM2-135M; one GPU, so Trinity's colocate mode. 32 tasks x 8 episodes per step, lr 3e-5, 20 steps,
# validation before and after.
# Run from the project root on that machine after the Trinity kit is installed (scripts/gpu/trinity_kit.sh).
#   bash scripts/gpu/trinity_math_agent.sh start [SECONDS]   # starts the run (setsid: it outlives the call),
#                                                            # then waits as `wait` does
#   bash scripts/gpu/trinity_math_agent.sh wait [SECONDS]    # waits up to SECONDS (default 540) for the run;
#                                                            # once it has ended, copies its records into $OUT
# STEPS (default 20) and VAL (validate before training, default true) shorten a run; TRINITY_ARGS adds overrides.
# Checkpoints (with Hugging Face weights) every 5 steps: scripts/gpu/sync_check.py checks that the samples drawn
# right after each weight sync fit the synced weights best (the engine really has them).
set -euo pipefail
W=/tmp/trinity-run R=launcher_record/trinity_gpu
steps=${STEPS:-20}

run() {
  source /tmp/trinity-env.sh
  export HYDRA_FULL_ERROR=1
  rm -rf "$R"
  # sdpa attention and no padding removal: flash-attn is not carried to the machine; its padding helpers are
  # loaded into the trainer's processes only (scripts/gpu/flash_attn_padding).
  # shellcheck disable=SC2086
  python3 -m astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=trinity --with-ray \
    astuner.experiment_name=trinity_gpu astuner.model.path=/tmp/smollm2 \
    astuner.task_reader.arithmetic.difficulty=1 'astuner.rollout.agentscope_workflow=workflow->MathAgentWorkflow' \
    astuner.data.train_batch_size=32 astuner.rollout.max_env_worker=256 astuner.rollout.max_num_seqs=256 \
    astuner.trainer_common.total_training_steps="$steps" astuner.trainer_common.test_freq="$steps" \
    astuner.trainer_common.save_freq=$(( steps >= 10 ? 5 : steps )) astuner.trainer_common.val_before_train=${VAL:-true} \
    trinity.trainer.save_hf_checkpoint=always \
    +trinity.trainer.use_remove_padding=false \
    +trinity.trainer.trainer_config.actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    +trinity.trainer.trainer_config.actor_rollout_ref.model.external_lib=astuner_flash_attn_padding \
    ${TRINITY_ARGS:-}
}

after_run() {
  python3 scripts/gpu/sync_check.py "$R" --prefix trinity --base /tmp/smollm2 --temperature 0.7 | tee "$W/sync_check.txt"
}

source scripts/gpu/background.sh
background_main "$@"
