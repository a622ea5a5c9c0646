#!/usr/bin/env bash
# The API server restarted mid-run, then PostgreSQL restarted mid-run: the
# controller rides through both, the run completes, and the ImageDB row of
# a GUI-submitted analysis ends finished with its result.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup recovery
kubectl -n "$CTL_NS" create quota pods --hard=pods=4 >/dev/null
acq=$(ctl_plate --wells 24 --sites 1)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
ctl_config "window: 4" "imagedb: {namespace: $CTL_NS}"
ctl_start

# A GUI-style submission: a parent row and one cellprofiler sub-analysis row.
aid=$(psql -XAtq -c "INSERT INTO image_analyses (plate_acquisition_id, pipeline_name, meta)
      VALUES ($acq, 'recovery', '{}') RETURNING id" | head -n1)
sid=$(psql -XAtq -c "INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id, meta, depends_on_sub_id)
      VALUES ($aid, $acq, '{\"type\": \"cellprofiler\", \"pipeline_file\": \"pipeline.cppipe\", \"batch_size\": 1}', '[]')
      RETURNING sub_id" | head -n1)
name="ia-$aid-$sid"
t_eventually 30 "the GUI row becomes Analysis $name" kubectl -n "$CTL_NS" get analysis "$name"
t_eventually 60 "batches run" sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis '$name' -o jsonpath='{.status.batches.succeeded}')\" -ge 2 ] 2>/dev/null"

t_check "the API server restarts" "$PLATEOP_ROOT/hack/cluster.sh" restart kube-apiserver
t_eventually 60 "batches keep completing after the API server restart" \
    sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis '$name' -o jsonpath='{.status.batches.succeeded}')\" -ge 8 ] 2>/dev/null"
t_check "PostgreSQL restarts" "$PLATEOP_PG_CTL" -w -t 60 -m fast restart
if ctl_wait_phase "$name" Succeeded 240; then
    t_ok "the run completes"
else
    t_fail "the run completes" "$(ctl_explain "$name")"
fi
t_check "the controller is still the same process" kill -0 "$CTL_PID"
t_eventually 10 "the row is finished, with no error, a result and progress 24 / 24" \
    sh -c "[ \"\$(psql -XAtq -c \"SELECT count(*) FROM image_sub_analyses WHERE sub_id = $sid AND start IS NOT NULL
        AND finish IS NOT NULL AND error IS NULL AND result ? 'job_folder' AND status->>'progress' LIKE '24 / 24%'\")\" = 1 ]"
t_check "24 batch Jobs, one each" \
    test "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=batch -o name | wc -l)" -eq 24
t_done
