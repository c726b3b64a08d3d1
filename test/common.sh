# Shared body of the train_full_*p.sh and train_performance_*p.sh scripts (sourced, never run on its own):
# arguments, data folder, the main.py run(s) and the closing performance block.
# The sourcing script sets script_name, case_kind (acc or perf), train_epochs and train_steps (its
# defaults), and for several devices rank_size (devices per server, 8), then calls
# `ascend_test_main "$@"`. test/parse_log.py computes FPS and the loss file.

network=DCGAN_ID2196_for_TensorFlow
test_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$test_dir")

export ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID:-0}
rank_size=${rank_size:-1}  # devices per server: 1 for the 1p scripts, 8 for the 8p ones
multi_rank=$([ "$rank_size" -gt 1 ] && echo true || echo false)
export RANK_SIZE=$rank_size
$multi_rank || unset TF_CONFIG  # one device: a cluster description in the environment is not this job's
export RANK_ID=${RANK_ID:-0}
export JOB_ID=${JOB_ID:-10087}
PYTHON=${PYTHON:-python3}
# The run enters the repository, so a relative interpreter path (PYTHON=.venv/bin/python) is made
# absolute; symlinks are kept, as a venv's python is one and resolving it would leave the venv.
case $PYTHON in
    /*) ;;
    */*) PYTHON=$PWD/$PYTHON ;;
esac

usage() {
    cat <<EOF
usage: bash $script_name --data_path=<folder> [--key=value ...]
  --data_path=PATH        folder holding the data set (PATH/celebA/*.jpg, PATH/mnist/*-ubyte) or the image folder itself (required)
  --dataset=NAME          celebA or mnist; another name is an image folder trained like celebA [celebA]
  --batch_size=N          images per step [64]
  --train_epochs=N        epochs to train [$train_epochs]
  --train_steps=N         stop at this global step; 0: the epochs decide [$train_steps]
  --precision_mode=MODE   allow_mix_precision, allow_fp32_to_fp16, force_fp16 or must_keep_origin_dtype [NPU: allow_mix_precision; GPU/CPU: float32]
  --output_path=PATH      folder of the log, the run folder and the results [test/output/\$ASCEND_DEVICE_ID]
  --ckpt_path=PATH        start from this checkpoint (a prefix, a checkpoint folder or a run folder) [a fresh start]
  --over_dump[=BOOL]      NPU only: dump the operators that overflow to <output>/overflow [False]
  --profiling[=BOOL]      NPU only: collect a profile in <output>/<CaseName>/profiling [False]
  --data_dump_flag[=BOOL] accepted for the ModelZoo's sake, not supported (noted in the log) [False]
  --data_dump_step=N      accepted with --data_dump_flag, not supported
  -h, --help              show this text
EOF
    if $multi_rank; then
        cat <<EOF
  --rank_size=N           devices (ranks) per server [$rank_size]; --batch_size is per device
  --rank_table=PATH       HCCL rank table of all servers [configs/rank_table_8p.json]
  --server_count=N        servers of the job; run the same command on each [1]
  --server_index=I        this server's place, 0 to server_count-1; its ranks are I x rank_size ... [0]
  --collective_timeout=S  seconds a rank waits for the others before the job stops [300]
environment: PYTHON [python3], JOB_ID [10087]. Each rank gets RANK_ID, ASCEND_DEVICE_ID and DEVICE_ID; its
output goes to <output>/<device>/train_<device>.log. Without NPUs the ranks are CPU (or GPU) workers that
meet over TensorFlow collectives (TF_CONFIG on 127.0.0.1), on one server only.
EOF
    else
        echo 'environment: ASCEND_DEVICE_ID [0], PYTHON [python3], JOB_ID [10087]; RANK_SIZE is set to 1.'
    fi
}

die() {  # die MESSAGE: the script's own errors (arguments, paths), exit status 1
    echo "[Error] $*" >&2
    exit 1
}

switch_value() {  # switch_value --flag[=BOOL] -> True or False
    local value=True
    case $1 in *=*) value=${1#*=} ;; esac
    case ${value,,} in
        true | 1 | yes | on) echo True ;;
        false | 0 | no | off) echo False ;;
        *) die "${1%%=*} takes True or False, got \"$value\"" ;;
    esac
}

check_count() {  # check_count NAME VALUE MINIMUM: VALUE must be an integer >= MINIMUM
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] || die "--$1 must be an integer >= $3, got \"$2\""
}

canonical() {  # canonical PATH: absolute, without symlinks or ..; the last part need not exist
    local path=$1 parent
    [ "${path#/}" != "$path" ] || path=$PWD/$path
    if [ -d "$path" ]; then
        (cd -P "$path" && pwd)
        return
    fi
    if parent=$(cd -P "$(dirname "$path")" 2>/dev/null && pwd); then
        printf '%s/%s\n' "${parent%/}" "$(basename "$path")"
    else
        printf '%s\n' "$path"
    fi
}

parse_args() {
    data_path='' dataset=celebA batch_size=64 precision_mode='' output_path='' ckpt_path=''
    over_dump=False profiling=False data_dump_flag=False data_dump_step=''
    rank_table='' server_count=1 server_index=0 collective_timeout=''
    local arg
    for arg in "$@"; do
        if $multi_rank; then
            case $arg in
                --rank_size=*) rank_size=${arg#*=}; continue ;;
                --rank_table=*) rank_table=${arg#*=}; continue ;;
                --server_count=*) server_count=${arg#*=}; continue ;;
                --server_index=*) server_index=${arg#*=}; continue ;;
                --collective_timeout=*) collective_timeout=${arg#*=}; continue ;;
            esac
        fi
        case $arg in
            -h | --help) usage; exit 0 ;;
            --data_path=*) data_path=${arg#*=} ;;
            --dataset=*) dataset=${arg#*=} ;;
            --batch_size=*) batch_size=${arg#*=} ;;
            --train_epochs=*) train_epochs=${arg#*=} ;;
            --train_steps=*) train_steps=${arg#*=} ;;
            --precision_mode=*) precision_mode=${arg#*=} ;;
            --output_path=*) output_path=${arg#*=} ;;
            --ckpt_path=*) ckpt_path=${arg#*=} ;;
            --over_dump | --over_dump=*) over_dump=$(switch_value "$arg") || exit 1 ;;
            --profiling | --profiling=*) profiling=$(switch_value "$arg") || exit 1 ;;
            --data_dump_flag | --data_dump_flag=*) data_dump_flag=$(switch_value "$arg") || exit 1 ;;
            --data_dump_step=*) data_dump_step=${arg#*=} ;;
            --data_path | --dataset | --batch_size | --train_epochs | --train_steps | --precision_mode | \
                --output_path | --ckpt_path | --data_dump_step)
                die "$arg takes a value: write $arg=<value> (see --help)" ;;
            *) die "unknown argument \"$arg\" (see --help)" ;;
        esac
    done
    [ -n "$data_path" ] || die 'para "data_path" must be config'
    [ -d "$data_path" ] || die "--data_path=$data_path is not a folder"
    [ -n "$dataset" ] && [ "${dataset#*/}" = "$dataset" ] || die "--dataset must be a folder name, got \"$dataset\""
    check_count batch_size "$batch_size" 1
    check_count train_epochs "$train_epochs" 1
    check_count train_steps "$train_steps" 0
    data_path=$(canonical "$data_path")
    if $multi_rank; then
        check_count rank_size "$rank_size" 1
        check_count server_count "$server_count" 1
        check_count server_index "$server_index" 0
        [ "$server_index" -lt "$server_count" ] || die "--server_index must be below --server_count ($server_count)"
        rank_table=$(canonical "${rank_table:-$repo_dir/configs/rank_table_8p.json}")
        [ -f "$rank_table" ] || die "--rank_table=$rank_table is not a file"
        export RANK_SIZE=$((rank_size * server_count)) RANK_TABLE_FILE=$rank_table
        output_path=${output_path:-$test_dir/output}  # each rank writes to <output>/<device>/
        mkdir -p -- "$output_path" || die "cannot create the output folder $output_path"
        output_path=$(canonical "$output_path")
        [ -z "$ckpt_path" ] || ckpt_path=$(canonical "$ckpt_path")
        return
    fi
    output_path=${output_path:-$test_dir/output/$ASCEND_DEVICE_ID}
    mkdir -p -- "$output_path" || die "cannot create the output folder $output_path"
    output_path=$(canonical "$output_path")
    [ -z "$ckpt_path" ] || ckpt_path=$(canonical "$ckpt_path")
    if [ -n "$ckpt_path" ] && [ -f "$ckpt_path/checkpoint/checkpoint" ]; then  # a run folder: its checkpoint/ sub-folder
        ckpt_path=$ckpt_path/checkpoint
    fi
}

note() {  # note MESSAGE: shown and written at the top of the training log
    echo "[Info] $*" | tee -a "$train_log"
}

holds_data() {  # holds_data FOLDER: the folder itself holds the files of $dataset
    if [ "$dataset" = mnist ]; then
        compgen -G "$1/train-images-idx3-ubyte*" >/dev/null
    else
        compgen -G "$1/*.jpg" >/dev/null
    fi
}

resolve_data() {  # sets data_dir and data_name, main.py's --data_dir and --dataset
    data_dir=$data_path data_name=$dataset
    if [ -e "$data_path/$dataset" ]; then
        :  # the usual layout: <data_path>/celebA, <data_path>/mnist
    elif [ -e "$data_path/data/$dataset" ]; then  # the Ascend port's layout: <data_path>/data/celebA
        data_dir=$data_path/data
    elif holds_data "$data_path"; then  # data_path is the data set folder itself
        data_dir=$(dirname "$data_path") data_name=$(basename "$data_path")
        if [ "$dataset" = mnist ] || [ "$data_name" = mnist ]; then
            [ "$data_name" = "$dataset" ] || die "main.py trains its MNIST model exactly when the data" \
                "folder is named mnist, and --dataset=$dataset reads $data_path: rename it, or pass" \
                "--data_path=<the folder holding $dataset/>"
        fi
    fi
    note "data: main.py reads --data_dir $data_dir --dataset $data_name"
}

fresh_run_folder() {  # a rerun is a new run, unless --ckpt_path lies in this run's own folder
    if [ -n "$ckpt_path" ] && [ "${ckpt_path#"$run_dir"/}" != "$ckpt_path" ]; then
        note "--ckpt_path is inside $run_dir: resuming that run from its latest checkpoint"
    elif [ -d "$run_dir" ]; then
        rm -rf -- "$run_dir" || die "cannot remove the earlier run folder $run_dir"
        note "removed the earlier run folder $run_dir: this is a new run"
    fi
}

training_failed() {  # training_failed STATUS REASON: report with the end of the log, exit STATUS
    echo "[Error] training failed: $2" >&2
    echo "[Error] last lines of $train_log:" >&2
    tail -n 20 "$train_log" >&2
    exit "$1"
}

main_args() {  # main_args OUT_DIR: sets args, the main.py command line of a rank
    args=(main.py --train --dataset "$data_name" --data_dir "$data_dir" --out_dir "$1"
        --out_name "$case_name" --batch_size "$batch_size" --epoch "$train_epochs" --train_steps "$train_steps")
    if [ "$dataset" = mnist ]; then
        args+=(--input_height=28 --output_height=28)
    else
        args+=(--input_height=108 --crop --output_height=64)
    fi
    [ -z "$precision_mode" ] || args+=(--precision_mode "$precision_mode")
    [ -z "$ckpt_path" ] || args+=(--init_checkpoint "$ckpt_path")
    if [ "$over_dump" = True ]; then
        mkdir -p -- "$output_path/overflow"
        args+=(--over_dump --over_dump_path "$output_path/overflow")
    fi
    [ "$profiling" = False ] || args+=(--profiling)
    [ -z "$collective_timeout" ] || args+=(--collective_timeout "$collective_timeout")
}

ascend_test_main() {
    local start_time
    start_time=$(date +%s)
    parse_args "$@"
    if $multi_rank; then
        ascend_test_ranks "$start_time"
        return
    fi
    case_name=${network}_bs${batch_size}_1p_${case_kind}
    results_dir=$output_path
    run_dir=$output_path/$case_name
    train_log=$output_path/train_$ASCEND_DEVICE_ID.log
    loss_file=$output_path/train_${case_name}_loss.txt
    rm -f -- "$loss_file" "$output_path/$case_name.log"
    : >"$train_log" || die "cannot write $train_log"

    resolve_data
    fresh_run_folder
    local args
    main_args "$output_path"
    unsupported_notes
    note "RANK_SIZE=$RANK_SIZE ASCEND_DEVICE_ID=$ASCEND_DEVICE_ID JOB_ID=$JOB_ID; running in $repo_dir:"
    note "$PYTHON ${args[*]}"
    echo "[Info] training; log: $train_log"

    cd "$repo_dir" || die "cannot enter $repo_dir"
    "$PYTHON" "${args[@]}" >>"$train_log" 2>&1
    local status=$?
    [ "$status" -eq 0 ] || training_failed "$status" "main.py exited with status $status"
    closing_block "$start_time" "$batch_size"
}

closing_block() {  # closing_block START_TIME IMAGES_PER_STEP: the performance block from $train_log
    local summary fps step_time loss device steps e2e
    summary=$("$PYTHON" "$test_dir/parse_log.py" "$train_log" "$2" "$loss_file") ||
        training_failed 1 "main.py wrote no step line"
    read -r fps step_time loss device steps <<<"$summary"
    e2e=$(($(date +%s) - $1))

    echo "------------------ Final result ------------------"
    echo "Final Performance images/sec : $fps"
    echo "Final Train Accuracy : None"
    echo "E2E Training Duration sec : $e2e"
    cat >"$results_dir/$case_name.log" <<EOF
Network = $network
RankSize = $RANK_SIZE
BatchSize = $batch_size
DeviceType = $device
CaseName = $case_name
ActualFPS = $fps
TrainingTime = $step_time
TrainAccuracy = None
ActualLoss = $loss
E2ETrainingTime = $e2e
EOF
    echo "[Info] $steps steps; results in $results_dir ($case_name.log, train_${case_name}_loss.txt," \
        "run folder $case_name/)"
}

unsupported_notes() {
    if [ "$data_dump_flag" = True ] || [ -n "$data_dump_step" ]; then
        note "--data_dump_flag/--data_dump_step are not supported by main.py and were ignored"
    fi
}

free_ports() {  # free_ports N: N TCP ports free on 127.0.0.1 now, space-separated
    "$PYTHON" -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

ascend_test_ranks() {  # RANK_SIZE ranks in all, rank_size of them on this server, each main.py in the background
    local start_time=$1 first=$((server_index * rank_size)) local_rank id rank ports workers='' i pid
    case_name=${network}_bs${batch_size}_${RANK_SIZE}p_${case_kind}
    local lead_dir=$output_path/0  # the first device's folder: rank 0's run folder and the results
    results_dir=$lead_dir
    run_dir=$lead_dir/$case_name
    train_log=$lead_dir/train_0.log
    loss_file=$lead_dir/train_${case_name}_loss.txt
    mkdir -p -- "$lead_dir" || die "cannot create $lead_dir"
    rm -f -- "$loss_file" "$lead_dir/$case_name.log"
    : >"$train_log" || die "cannot write $train_log"
    resolve_data
    fresh_run_folder
    unsupported_notes
    if [ "$server_count" -eq 1 ]; then  # without NPUs the ranks meet over TensorFlow collectives on this host
        ports=($(free_ports "$rank_size")) || die "cannot find free ports on 127.0.0.1"
        for i in "${!ports[@]}"; do workers+="${workers:+, }\"127.0.0.1:${ports[$i]}\""; done
    fi
    note "RANK_SIZE=$RANK_SIZE (server $server_index of $server_count: ranks $first to $((first + rank_size - 1)))" \
        "RANK_TABLE_FILE=$RANK_TABLE_FILE JOB_ID=$JOB_ID; running in $repo_dir"
    cd "$repo_dir" || die "cannot enter $repo_dir"
    local pids=() logs=() args log
    for ((local_rank = 0; local_rank < rank_size; local_rank++)); do
        id=$local_rank rank=$((first + local_rank))
        mkdir -p -- "$output_path/$id" || die "cannot create $output_path/$id"
        log=$output_path/$id/train_$id.log
        [ "$id" -eq 0 ] || : >"$log"
        main_args "$output_path/$id"
        echo "[Info] rank $rank, device $id: $PYTHON ${args[*]}" >>"$log"
        (
            export RANK_ID=$rank ASCEND_DEVICE_ID=$id DEVICE_ID=$id
            if [ -n "$workers" ]; then
                export TF_CONFIG="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $rank}}"
            fi
            exec "$PYTHON" "${args[@]}"
        ) >>"$log" 2>&1 &
        pids+=($!) logs+=("$log")
    done
    echo "[Info] training on $rank_size devices; logs: $output_path/<device>/train_<device>.log"
    trap 'for pid in "${pids[@]}"; do [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null; done' INT TERM
    local status=0 failed='' running code
    while :; do  # wait for every rank; when one fails, stop the others
        running=0
        for i in "${!pids[@]}"; do
            [ -n "${pids[$i]}" ] || continue
            if kill -0 "${pids[$i]}" 2>/dev/null; then
                running=$((running + 1))
                continue
            fi
            wait "${pids[$i]}"
            code=$?
            pids[$i]=''
            if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
                status=$code failed=$i
                for pid in "${pids[@]}"; do [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null; done
            fi
        done
        [ "$running" -gt 0 ] || break
        sleep 1
    done
    trap - INT TERM
    if [ "$status" -ne 0 ]; then
        train_log=${logs[$failed]}
        training_failed "$status" "rank $((first + failed)) (device $failed) exited with status $status"
    fi
    closing_block "$start_time" $((batch_size * RANK_SIZE))
}
