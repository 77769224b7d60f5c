# Sourced by the GPU run scripts: run one job in the background across device calls, and collect it.
# A job started with `start` runs under setsid, so it outlives the call; the machine stays warm 30 s after a
# call, so the next call (`wait`) must follow at once. Each script sets, before sourcing this file:
#   W      a folder of its own under /tmp (driver log, rc, GPU samples, launch time)
#   R      the run's records folder (launcher_record/<experiment>)
#   run()  the job itself, run in the foreground by `bash SCRIPT run`
# and may define after_run() (checks on the finished records, their output appended to the console file),
# and calls `background_main "$@"`. `wait` prints the job's progress lines and, once it has ended, copies
# what matters into $OUT (when set): the console, the GPU samples, the summary and the records without weights.

gpu_sampler_start() {  # GPU memory and utilisation every second, for the table's peak memory
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 1000 \
    > "$W/gpu_samples.csv" 2>/dev/null &
  SAMPLER=$!
}

gpu_sampler_stop() { kill "${SAMPLER:-0}" 2>/dev/null || true; }

collect() {
  [ -n "${OUT:-}" ] || return 0
  cp "$W"/astuner.out "$W"/gpu_samples.csv "$W"/summary.json "$W"/sync_check.txt "$OUT/" 2>/dev/null || true
  # Records without weights or copies of the tasks; trajectories compressed on their own (the largest part).
  [ -d "$R" ] && tar czf "$OUT/records.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' \
    --exclude='*/tasks/*' --exclude='*/trajectories/*' --exclude='*/checkpoints/*' "$R" 2>/dev/null || true
  [ -d "$R/trajectories" ] && tar czf "$OUT/trajectories.tgz" -C "$R" trajectories 2>/dev/null || true
}

background_main() {
  local mode=${1:-start} limit=${2:-540}
  case "$mode" in
    run)
      date +%s.%N > "$W/started_at"
      local rc=0
      gpu_sampler_start
      run > "$W/astuner.out" 2>&1 || rc=$?
      gpu_sampler_stop
      if declare -F after_run > /dev/null; then after_run >> "$W/astuner.out" 2>&1 || true; fi
      python3 scripts/gpu/backbone_table.py --json "$W/summary.json" \
        "$(basename "$0" .sh)=$R" --started-at "$(cat "$W/started_at")" --gpu-samples "$W/gpu_samples.csv" \
        >> "$W/astuner.out" 2>&1 || true
      echo "$rc" > "$W/rc"
      ;;
    start)
      mkdir -p "$W" && rm -f "$W/rc"
      setsid nohup bash "$0" run > "$W/driver.out" 2>&1 < /dev/null &
      echo "started (pid $!)"
      background_main wait "$limit"
      ;;
    wait)
      local t0
      t0=$(date +%s)
      while [ ! -f "$W/rc" ] && [ $(( $(date +%s) - t0 )) -lt "$limit" ]; do sleep 5; done
      grep -h -E "step [0-9]+|Step [0-9]+|ERROR|Error|error:|Traceback|colocate|ready|validation" \
        "$W/astuner.out" 2>/dev/null | cut -c1-400 | tail -40 || true
      if [ -f "$W/rc" ]; then
        echo "finished: rc $(cat "$W/rc")"
        tail -c 3000 "$W/astuner.out"
        collect
      else
        echo "still running after ${limit}s"
      fi
      ;;
    *) echo "usage: $0 start|wait [SECONDS]" >&2; exit 2 ;;
  esac
}
