#!/usr/bin/env bash
# The three-backbone table's job on `--backbone=debug` (one process + a vLLM child, the trainer on CUDA): the
# tutorial's own workflow (ReActAgent + python tool) on one-digit arithmetic (pinned here: the main job has
# moved on), the embedded SmolLM2-135M, 32 tasks x 8 episodes per step, lr 3e-5, 20 steps, validation before
# and after, as scripts/gpu/trinity_math_agent.sh and verl_table_math_agent.sh.
# Run from the project root on the lent GPU machine with either kit installed: Trinity's
# (scripts/gpu/trinity_kit.sh: vLLM 0.23) or ../shared/gpu's (vLLM 0.24, with .gpu/astuner's wheels).
#   bash scripts/gpu/debug_math_agent.sh start [SECONDS]   # as trinity_math_agent.sh
#   bash scripts/gpu/debug_math_agent.sh wait [SECONDS]
# The engine runs on the machine's python3 (full path: the engine's interpreter must be one), with the GPU
# settings astuner fills in for one GPU (rollout.engine.gpu_memory_utilization, CUDA graphs).
set -euo pipefail
W=/tmp/debug-run R=launcher_record/debug_gpu
steps=${STEPS:-20}

run() {
  if [ -f /tmp/trinity-env.sh ]; then
    source /tmp/trinity-env.sh
  else
    source /tmp/gpu-env.sh
    SITE=/tmp/site-astuner
    [ -d $SITE/agentscope ] || python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .gpu/astuner/wheels/*.whl
    export PYTHONPATH=$PWD:$SITE:$PYTHONPATH PYTHONUNBUFFERED=1
  fi
  rm -rf "$R"
  python3 -m astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=debug \
    astuner.experiment_name=debug_gpu astuner.model.path=/tmp/smollm2 \
    astuner.task_reader.arithmetic.difficulty=1 'astuner.rollout.agentscope_workflow=workflow->MathAgentWorkflow' \
    astuner.rollout.engine.python="$(command -v python3)" \
    astuner.data.train_batch_size=32 astuner.rollout.max_env_worker=256 astuner.rollout.max_num_seqs=256 \
    astuner.trainer_common.total_training_steps="$steps" astuner.trainer_common.test_freq="$steps" \
    astuner.trainer_common.save_freq="$steps" astuner.trainer_common.val_before_train=${VAL:-true} \
    "astuner.trainer_common.logger=[console]" ${DEBUG_ARGS:-}
}

source scripts/gpu/background.sh
background_main "$@"
