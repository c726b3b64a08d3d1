#!/usr/bin/env bash
# Full DCGAN training on the 8 devices of a server (Ascend NPUs over HCCL; GPU or CPU workers over
# TensorFlow collectives where there are no NPUs), synchronous data parallelism, 25 epochs by default,
# ending with the ModelZoo performance block. Run it from test/ or from the repository root:
#
#   bash train_full_8p.sh --data_path=/data                            # reads /data/celebA/*.jpg
#   bash test/train_full_8p.sh --data_path=/data --dataset=mnist --rank_size=2
#   bash test/train_full_8p.sh --data_path=/data --rank_table=/etc/hccl_8p.json
#   bash test/train_full_8p.sh --data_path=/data --server_count=2 --server_index=0 --rank_table=16p.json  # on host 0
#   bash test/train_full_8p.sh --data_path=/data --server_count=2 --server_index=1 --rank_table=16p.json  # on host 1
#
# --batch_size is per device: a step trains on batch_size x RANK_SIZE images, each rank its own slice of
# the epoch's order. RANK_SIZE = rank_size x server_count; rank r runs on device r - 8 x server_index with
# RANK_ID, ASCEND_DEVICE_ID and DEVICE_ID set, RANK_TABLE_FILE from --rank_table
# (configs/rank_table_8p.json: replace its device_ip values with your cards', `hccn_tool -i N -ip -g`).
# Output, in test/output/ or --output_path:
#   <device>/train_<device>.log           each rank's main.py output
#   0/<CaseName>/                          the run folder, written by rank 0 alone (checkpoint/, samples/, ...)
#   0/train_<CaseName>_loss.txt, 0/<CaseName>.log   d_loss per step (the mean over the ranks); the results,
#                                          ActualFPS in global images/s
# CaseName is DCGAN_ID2196_for_TensorFlow_bs<batch>_<RANK_SIZE>p_acc. A rank that fails stops the others,
# and the script exits with its status. Ctrl-C or SIGTERM: rank 0 saves, all ranks stop after the same step.
# `bash train_full_8p.sh --help` lists the arguments.
set -u
script_name=train_full_8p.sh
case_kind=acc
train_epochs=25
train_steps=0
rank_size=8
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ascend_test_main "$@"
