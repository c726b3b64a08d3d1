#!/usr/bin/env bash
# Full DCGAN training on one device (Ascend NPU, or GPU/CPU where there is none), 25 epochs by
# default, ending with the ModelZoo performance block. Run it from test/ or from the repository root:
#
#   bash train_full_1p.sh --data_path=/data                      # reads /data/celebA/*.jpg
#   bash test/train_full_1p.sh --data_path=/data --dataset=mnist  # reads /data/mnist/*-ubyte
#   bash test/train_full_1p.sh --data_path=/data/celebA --batch_size=128 --train_epochs=5
#   ASCEND_DEVICE_ID=3 bash test/train_full_1p.sh --data_path=/data --ckpt_path=/ckpt/model.b64-3165
#   bash test/train_full_1p.sh --data_path=/data --ckpt_path=test/output/0/DCGAN_ID2196_for_TensorFlow_bs64_1p_perf
#   PYTHON=.venv/bin/python bash test/train_full_1p.sh --data_path=/data --output_path=/tmp/dcgan
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
# CaseName is DCGAN_ID2196_for_TensorFlow_bs<batch>_1p_acc. Without --ckpt_path an earlier run folder
# of that name is removed first, so a rerun is a new run. Failed training: non-zero exit, no results.
# `bash train_full_1p.sh --help` lists the arguments.
set -u
script_name=train_full_1p.sh
case_kind=acc
train_epochs=25
train_steps=0
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ascend_test_main "$@"
