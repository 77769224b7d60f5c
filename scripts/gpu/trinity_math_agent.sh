#!/usr/bin/env bash
# The main job's agent (tutorial workflow: ReActAgent + python tool, generated arithmetic tasks, the embedded
# SmolLM2-135M) trained by `astuner --backbone=trinity --with-ray` on the lent GPU machine: one GPU, so
# Trinity's colocate mode. 32 tasks x 8 episodes per step, lr 3e-5, 20 steps, validation before and after.
# Run from the project root on that machine after the Trinity kit is installed (scripts/gpu/trinity_kit.sh).
#   bash scripts/gpu/trinity_math_agent.sh start [SECONDS]   # starts the run (setsid: it outlives the call),
#                                                            # then waits as `wait` does
#   bash scripts/gpu/trinity_math_agent.sh wait [SECONDS]    # waits up to SECONDS (default 540) for the run,
#                                                            # then copies what it wrote so far into $OUT
# A run longer than one call goes on between calls while the machine stays warm (30 s after a call).
# STEPS (default 20) and VAL (validate before training, default true) shorten a run; TRINITY_ARGS adds overrides
# (e.g. "trinity.explorer.rollout_model.enforce_eager=true" starts the engine faster, without CUDA graphs).
set -euo pipefail
EXP=trinity_gpu R=launcher_record/trinity_gpu W=/tmp/trinity-run
mode=${1:-start} limit=${2:-540}

run() {
  source /tmp/trinity-env.sh
  export HYDRA_FULL_ERROR=1
  rm -rf "$R"
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 1000 \
    > $W/gpu_samples.csv 2>/dev/null &
  local smi=$! rc=0
  # sdpa attention and no padding removal: flash-attn is not carried to the machine; its padding helpers are
  # loaded into the trainer's processes only (scripts/gpu/flash_attn_padding).
  # shellcheck disable=SC2086
  python3 -m astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=trinity --with-ray \
    astuner.experiment_name=$EXP astuner.model.path=/tmp/smollm2 \
    astuner.data.train_batch_size=32 astuner.rollout.max_env_worker=256 astuner.rollout.max_num_seqs=256 \
    astuner.trainer_common.total_training_steps=${STEPS:-20} astuner.trainer_common.test_freq=${STEPS:-20} \
    astuner.trainer_common.save_freq=${STEPS:-20} astuner.trainer_common.val_before_train=${VAL:-true} \
    +trinity.trainer.use_remove_padding=false \
    +trinity.trainer.trainer_config.actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    +trinity.trainer.trainer_config.actor_rollout_ref.model.external_lib=astuner_flash_attn_padding \
    ${TRINITY_ARGS:-} > $W/astuner.out 2>&1 || rc=$?
  kill $smi 2>/dev/null || true
  echo $rc > $W/rc
}

collect() {
  [ -n "${OUT:-}" ] || return 0
  cp $W/astuner.out $W/gpu_samples.csv "$OUT/" 2>/dev/null || true
  [ -d "$R" ] && tar czf "$OUT/records.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' \
    --exclude='*/tasks/*' "$R" 2>/dev/null || true
}

case "$mode" in
  run) run ;;
  start)
    mkdir -p $W && rm -f $W/rc
    setsid nohup bash "$0" run > $W/driver.out 2>&1 < /dev/null &
    echo "started (pid $!)"
    exec bash "$0" wait "$limit"
    ;;
  wait)
    t0=$(date +%s)
    while [ ! -f $W/rc ] && [ $(( $(date +%s) - t0 )) -lt "$limit" ]; do sleep 10; done
    grep -h -E "step [0-9]+|ERROR|Error|error:|Traceback|colocate|ready" $W/astuner.out 2>/dev/null | tail -40 || true
    if [ -f $W/rc ]; then echo "finished: rc $(cat $W/rc)"; else echo "still running after ${limit}s"; fi
    tail -c 6000 "$R/trinity.log" 2>/dev/null || true
    collect
    ;;
  *) echo "usage: $0 start|wait [SECONDS]" >&2; exit 2 ;;
esac
