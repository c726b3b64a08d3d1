#!/usr/bin/env bash
# DCGAN performance run on the 8 devices of a server (Ascend NPUs over HCCL; GPU or CPU workers over
# TensorFlow collectives where there are no NPUs): 1000 steps by default, ending with the ModelZoo
# performance block (global images/sec averaged over the steps after warm-up). Run it from test/ or from
# the repository root:
#
#   bash train_performance_8p.sh --data_path=/data                      # reads /data/celebA/*.jpg
#   bash test/train_performance_8p.sh --data_path=/data --train_steps=200 --rank_size=4
#   bash test/train_performance_8p.sh --data_path=/data --server_count=2 --server_index=1 --rank_table=16p.json
#
# --batch_size is per device: a step trains on batch_size x RANK_SIZE images. See train_full_8p.sh for the
# ranks, the rank table and the output folders (test/output/<device>/, results in test/output/0/).
# CaseName is DCGAN_ID2196_for_TensorFlow_bs<batch>_<RANK_SIZE>p_perf.
# `bash train_performance_8p.sh --help` lists the arguments.
set -u
script_name=train_performance_8p.sh
case_kind=perf
train_epochs=1
train_steps=1000
rank_size=8
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ascend_test_main "$@"
