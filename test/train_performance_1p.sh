#!/usr/bin/env bash
# DCGAN performance run on one device (Ascend NPU, or GPU/CPU where there is none): 1000 steps by
# default, ending with the ModelZoo performance block (images/sec averaged over the steps after
# warm-up). Run it from test/ or from the repository root:
#
#   bash train_performance_1p.sh --data_path=/data                      # reads /data/celebA/*.jpg
#   bash test/train_performance_1p.sh --data_path=/data --train_steps=200 --batch_size=128
#   bash test/train_performance_1p.sh --data_path=/data --dataset=mnist  # reads /data/mnist/*-ubyte
#   bash test/train_performance_1p.sh --data_path=/data --precision_mode=allow_fp32_to_fp16 --profiling
#   PYTHON=.venv/bin/python bash test/train_performance_1p.sh --data_path=/data --output_path=/tmp/perf
#
# Data: --data_path is the folder holding the data set folder (main.py gets --data_dir <data_path>
# --dataset <dataset>); <data_path>/data/<dataset> (the Ascend port's layout) is found too, and a
# data_path that holds the *.jpg images (or MNIST idx files) itself is read as data_dir=its parent,
# dataset=its name. celebA is centre-cropped to 108 and resized to 64x64; mnist trains at 28x28.
# Output, in test/output/$ASCEND_DEVICE_ID/ or --output_path:
#   train_$ASCEND_DEVICE_ID.log            main.py's stdout and stderr (after a few [Info] lines)
#   <CaseName>/                            the run folder: checkpoint/ (the port's ckpt), samples/,
#                                          logs/ (events), log.txt, config.json
#   train_<CaseName>_loss.txt, <CaseName>.log   d_loss per step; the key = value results
# CaseName is DCGAN_ID2196_for_TensorFlow_bs<batch>_1p_perf. Without --ckpt_path an earlier run folder
# of that name is removed first, so a rerun is a new run. Failed training: non-zero exit, no results.
# `bash train_performance_1p.sh --help` lists the arguments.
set -u
script_name=train_performance_1p.sh
case_kind=perf
train_epochs=1
train_steps=1000
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ascend_test_main "$@"
