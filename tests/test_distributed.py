"""Unit tests of data parallelism: cluster descriptions, shards, the all-reduce and broadcast on two in-process
ranks, identity at one rank, the HCCL broadcast (with a stand-in npu_bridge) and the launcher's environments."""
import json
import os
import sys
import threading
import types

import numpy as np
import pytest

from conftest import REPO

import data
import distributed
import pipeline
from tf_compat import tf

sys.path.insert(0, os.path.join(REPO, 'tools'))
import launch  # noqa: E402


# ---- TF_CONFIG and rank tables ------------------------------------------------------------------------
def test_tf_config_workers_in_order():
    text = json.dumps({'cluster': {'worker': ['a:1', 'b:2', 'c:3']}, 'task': {'type': 'worker', 'index': 2}})
    cluster = distributed.parse_tf_config(text)
    assert cluster.addresses == ['a:1', 'b:2', 'c:3']
    assert cluster.rank == 2 and cluster.jobs[2] == ('worker', 2)


def test_tf_config_chief_is_rank_zero():
    text = json.dumps({'cluster': {'chief': ['c:0'], 'worker': ['w:1', 'w:2']},
                       'task': {'type': 'worker', 'index': 0}})
    cluster = distributed.parse_tf_config(text)
    assert cluster.jobs == [('chief', 0), ('worker', 0), ('worker', 1)]
    assert cluster.rank == 1


@pytest.mark.parametrize('text', [
    '{not json',
    '{"task": {"type": "worker", "index": 0}}',
    '{"cluster": {"worker": ["a:1"], "ps": ["p:2"]}, "task": {"type": "worker", "index": 0}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}}',
    '{"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}',
])
def test_tf_config_mistakes_are_one_sentence(text):
    with pytest.raises(distributed.DistributedError) as caught:
        distributed.parse_tf_config(text)
    assert '\n' not in str(caught.value) and str(caught.value).endswith('.')


def test_rank_table_example_parses():
    entries = distributed.parse_rank_table(os.path.join(REPO, 'configs', 'rank_table_8p.json'))
    assert [e.rank_id for e in entries] == list(range(8))
    assert [e.device_id for e in entries] == list(range(8))
    assert len(set(e.device_ip for e in entries)) == 8


def test_rank_table_two_servers_and_mistakes():
    def server(sid, first):
        return {'server_id': sid, 'device': [{'device_id': str(d), 'device_ip': '10.0.%d.%d' % (first, d),
                                              'rank_id': str(first + d)} for d in range(8)]}
    table = {'server_count': '2', 'server_list': [server('10.1.0.1', 0), server('10.1.0.2', 8)],
             'status': 'completed', 'version': '1.0'}
    entries = distributed.parse_rank_table(table)
    assert [e.rank_id for e in entries] == list(range(16))
    assert entries[8].server_id == '10.1.0.2' and entries[8].device_id == 0
    table['server_count'] = '3'
    with pytest.raises(distributed.DistributedError):
        distributed.parse_rank_table(table)
    table['server_count'] = '2'
    table['server_list'][1]['device'][0]['rank_id'] = '3'  # rank 3 twice, 8 missing
    with pytest.raises(distributed.DistributedError):
        distributed.parse_rank_table(table)


def test_from_environment():
    single = distributed.from_environment('cpu', environ={})
    assert single.size == 1 and single.is_chief and not single.distributed
    two = json.dumps({'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 'task': {'type': 'worker', 'index': 1}})
    ranks = distributed.from_environment('cpu', environ={'TF_CONFIG': two})
    assert (ranks.engine, ranks.size, ranks.rank, ranks.is_chief) == ('collective', 2, 1, False)
    with pytest.raises(distributed.DistributedError):  # RANK_SIZE without a TF_CONFIG off the NPU
        distributed.from_environment('cpu', environ={'RANK_SIZE': '2', 'RANK_ID': '0'})
    hccl = distributed.from_environment('npu', environ={'RANK_SIZE': '8', 'RANK_ID': '3', 'TF_CONFIG': two})
    assert (hccl.engine, hccl.size, hccl.rank) == ('hccl', 8, 3)
    with pytest.raises(distributed.DistributedError):
        distributed.from_environment('npu', environ={'RANK_SIZE': '8', 'RANK_ID': '8'})
    table = os.path.join(REPO, 'configs', 'rank_table_8p.json')
    with pytest.raises(distributed.DistributedError):  # the table lists 8 ranks
        distributed.from_environment('npu', environ={'RANK_SIZE': '4', 'RANK_ID': '0', 'RANK_TABLE_FILE': table})


# ---- shards ---------------------------------------------------------------------------------------------
class Numbered(data.ArraySource):
    """Images whose single pixel is their index."""

    def __init__(self, n):
        super(Numbered, self).__init__(np.arange(n).reshape(n, 1, 1, 1))


@pytest.mark.parametrize('size', [2, 3])
def test_host_shards_are_disjoint_and_cover_the_epoch(size):
    n, batch, seed = 50, 4, 7
    steps = data.batches_per_epoch(n, batch * size)
    seen = []
    for rank in range(size):
        stream = data.batch_stream(Numbered(n), batch, seed, 0, steps, rank=rank, size=size)
        rank_images = [next(stream)[2].ravel() for _ in range(steps)]
        seen.append(np.concatenate(rank_images))
    everything = np.concatenate(seen)
    assert len(everything) == steps * batch * size
    assert len(set(everything.tolist())) == len(everything)  # disjoint
    permutation = data.epoch_permutation(n, seed, 0)
    assert set(everything.tolist()) == set(permutation[:steps * batch * size].tolist())  # the epoch's share
    # each step's global batch is the one a single device with batch x size would take
    first_step = np.concatenate([seen[r][:batch] for r in range(size)])
    assert first_step.tolist() == permutation[:batch * size].tolist()


def test_graph_shards_match_the_host_shards():
    n, batch, size, seed = 40, 3, 2, 1
    steps = data.batches_per_epoch(n, batch * size)
    for rank in range(size):
        orders = np.concatenate([pipeline.epoch_order(n, batch, seed, e, steps, rank, size).ravel()
                                 for e in range(2)])[2 * batch:]  # from step 2 to the end of epoch 1
        stream = data.batch_stream(Numbered(n), batch, seed, 2, steps, rank=rank, size=size)
        host = np.concatenate([next(stream)[2].ravel() for _ in range(2 * steps - 2)])
        assert orders.tolist() == host.tolist()
    one = pipeline.epoch_order(n, batch, seed, 0, steps)
    assert one.tolist() == pipeline.epoch_order(n, batch, seed, 0, steps, 0, 1).tolist()


# ---- one rank: the identity ---------------------------------------------------------------------------
def small_model(ranks):
    """A linear model with a moving statistic: (train op, loss, w, moving)."""
    with tf.variable_scope('net', use_resource=True):
        w = tf.get_variable('w', [3], initializer=tf.random_normal_initializer(seed=ranks.rank + 1))
        moving = tf.get_variable('bn/moving_mean', [3], initializer=tf.zeros_initializer(), trainable=False)
    x = tf.constant([1.0, 2.0, 3.0]) * (ranks.rank + 1)
    loss = tf.reduce_sum(w * w * x)
    step = tf.train.get_or_create_global_step()
    optimizer = (ranks.optimizer_wrapper(None) or (lambda o: o))(tf.train.AdamOptimizer(0.1))
    train = tf.group(optimizer.minimize(loss, global_step=step), tf.assign_add(moving, x))
    return ranks.sync_after(train, [moving]), loss, w, moving, optimizer


def test_one_rank_is_the_identity():
    ranks = distributed.Context()
    assert ranks.optimizer_wrapper(None) is None
    marker = object()
    assert ranks.optimizer_wrapper(marker) is marker
    graphs = []
    for wrap in (False, True):
        with tf.Graph().as_default() as graph:
            train, loss, _, _, _ = small_model(ranks if wrap else distributed.Context())
            if wrap:
                assert ranks.sync_after(train, tf.global_variables()) is train
                assert ranks.broadcast_op(tf.global_variables()) is None
                agreement = ranks.step_agreement(loss, loss)
                assert agreement.fetches == [loss, loss] and agreement.feed(True) is None
                assert agreement.read([1.0, 2.0], True) == (1.0, 2.0, True)
            graphs.append(sorted(node.name for node in graph.as_graph_def().node))
    assert graphs[0] == graphs[1]


# ---- two ranks in this process --------------------------------------------------------------------------
def two_rank_contexts(size=2):
    ports = launch.free_ports(size)
    addresses = ['127.0.0.1:%d' % p for p in ports]
    return [distributed.Context('collective', size, rank, distributed.Cluster(addresses, [('worker', i) for i in
                                range(size)], rank), timeout=60) for rank in range(size)]


def run_ranks(contexts, body):
    """Builds and runs body(ranks, sess) for each rank in its own graph and thread; returns the results."""
    results, errors = [None] * len(contexts), []

    def one(ranks):
        try:
            with tf.Graph().as_default():
                build = body(ranks)
                config = ranks.session_config(tf.ConfigProto())
                with tf.Session(ranks.session_target(config), config=config) as sess:
                    results[ranks.rank] = build(sess)
        except Exception as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=one, args=(ranks,)) for ranks in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


def test_all_reduce_is_the_mean_of_the_ranks_gradients_and_broadcast_makes_all_variables_equal():
    def body(ranks):
        train, loss, w, moving, optimizer = small_model(ranks)
        inner = optimizer._optimizer
        local = inner.compute_gradients(loss, var_list=[w])[0][0]  # this rank's own gradient
        averaged = optimizer.compute_gradients(loss, var_list=[w])[0][0]
        agreement = ranks.step_agreement(loss, loss * 0 + float(ranks.rank))
        broadcast = ranks.broadcast_op(tf.global_variables())
        everything = tf.global_variables()

        def run(sess):
            sess.run(tf.global_variables_initializer())
            before = sess.run(w)
            ranks.run(sess, broadcast)
            start = sess.run(w)
            got_local, got_averaged = ranks.run(sess, [local, averaged])
            for _ in range(3):
                agreed = ranks.run(sess, [train, agreement.fetches], agreement.feed(ranks.rank == 1))[1]
            names = [v.op.name for v in everything]
            return dict(before=before, start=start, local=got_local, averaged=got_averaged,
                        agreed=agreement.read(agreed, False), values=dict(zip(names, sess.run(everything))))
        return run

    rank0, rank1 = run_ranks(two_rank_contexts(), body)
    assert not np.array_equal(rank0['before'], rank1['before'])  # different initial draws ...
    assert np.array_equal(rank0['start'], rank1['start']) and np.array_equal(rank0['start'], rank0['before'])  # ... rank 0's
    np.testing.assert_allclose(rank0['averaged'], (rank0['local'] + rank1['local']) / 2, rtol=1e-6)
    assert np.array_equal(rank0['averaged'], rank1['averaged'])
    assert not np.allclose(rank0['local'], rank1['local'])
    names = sorted(rank0['values'])
    assert any('Adam' in n for n in names) and 'global_step' in names and 'net/bn/moving_mean' in names
    for name in names:  # every variable: weights, Adam slots and powers, moving statistic, step
        assert np.array_equal(rank0['values'][name], rank1['values'][name]), name
    np.testing.assert_allclose(rank0['values']['net/bn/moving_mean'], 3 * 1.5 * np.array([1.0, 2.0, 3.0]))
    assert rank0['values']['global_step'] == 3
    assert rank0['agreed'][2] and rank1['agreed'][2]  # rank 1's stop request reached both
    assert rank0['agreed'][1] == 0.5  # mean of the ranks' second value (0 and 1)


def test_without_averaging_the_ranks_drift_apart():
    def body(ranks):
        with tf.variable_scope('net', use_resource=True):
            w = tf.get_variable('w', [3], initializer=tf.ones_initializer())
        loss = tf.reduce_sum(w * w * tf.constant([1.0, 2.0, 3.0]) * (ranks.rank + 1))
        train = tf.train.AdamOptimizer(0.1).minimize(loss)  # no wrapper: each rank its own gradients

        def run(sess):
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            return sess.run(w)
        return run

    rank0, rank1 = run_ranks(two_rank_contexts(), body)
    assert not np.array_equal(rank0, rank1)


def test_watchdog_names_the_rank_that_is_gone():
    contexts = two_rank_contexts()
    ranks = contexts[0]
    ranks.timeout = 2.0
    reported = []
    done = threading.Event()

    def report(sentence):
        reported.append(sentence)
        done.set()
    ranks.on_failure = report
    with tf.Graph().as_default():
        total = ranks.all_reduce(tf.constant([1.0]))
        config = ranks.session_config(tf.ConfigProto())
        sess = tf.Session(ranks.session_target(config), config=config)
        thread = threading.Thread(target=lambda: ranks.run(sess, total, what='a test step'), daemon=True)
        thread.start()  # rank 1 never comes: its port does not answer
        assert done.wait(30)
    assert 'rank 1 (%s) is gone' % contexts[1].cluster.addresses[1] in reported[0]
    assert reported[0].startswith('a test step on rank 0 waited')


def test_watchdog_names_the_rank_that_hangs_while_its_server_answers():
    contexts = two_rank_contexts()
    contexts[0].timeout = 3.0
    reported, done = [], threading.Event()

    def report(sentence):
        reported.append(sentence)
        done.set()
    contexts[0].on_failure = report
    hang, errors = threading.Event(), []

    def rank(ranks):
        try:
            with tf.Graph().as_default():
                value = tf.constant([1.0])
                agreement = ranks.step_agreement(value[0], value[0])
                config = ranks.session_config(tf.ConfigProto())
                with tf.Session(ranks.session_target(config), config=config) as sess:
                    ranks.run(sess, agreement.fetches)  # step 1: both take part
                    if ranks.rank == 1:
                        hang.wait(60)  # its Python hangs; its server still answers
                    ranks.run(sess, agreement.fetches, what='a test step')
        except Exception as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=rank, args=(ranks,), daemon=True) for ranks in contexts]
    for t in threads:
        t.start()
    try:
        assert done.wait(60), 'the watchdog did not report'
    finally:
        hang.set()  # rank 1 takes its step: rank 0's step completes and both threads end
        for t in threads:
            t.join(60)
    assert not errors
    assert 'rank 1 (%s) hangs' % contexts[1].cluster.addresses[1] in reported[0], reported[0]
    assert reported[0].startswith('a test step on rank 0 waited')
    assert contexts[1].ranks_behind() == []  # after the step, nobody is behind


# ---- HCCL (npu_bridge stand-in) -------------------------------------------------------------------------
def test_hccl_broadcast_covers_every_global_variable(monkeypatch):
    import npu
    calls = []

    def broadcast(tensors, root_rank, fusion=2, fusion_id=0, group='hccl_world_group'):
        calls.append((tensors[0].dtype.name, root_rank))
        return [tf.identity(t) for t in tensors]

    hccl_ops = types.SimpleNamespace(broadcast=broadcast, allreduce=lambda t, reduction, **k: t)
    fake = types.ModuleType('npu_bridge.npu_init')
    fake.hccl_ops = hccl_ops
    monkeypatch.setitem(sys.modules, 'npu_bridge', types.ModuleType('npu_bridge'))
    monkeypatch.setitem(sys.modules, 'npu_bridge.npu_init', fake)
    ranks = distributed.Context('hccl', 8, 3)
    with tf.Graph().as_default():
        small_model(distributed.Context())
        variables = tf.global_variables()
        op = ranks.broadcast_op(variables)
        assigned = [n for n in tf.get_default_graph().as_graph_def().node if n.op == 'AssignVariableOp']
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(tf.assign_add(tf.train.get_global_step(), 5))
            sess.run(op)
            assert sess.run(tf.train.get_global_step()) == 5  # int64 step through int32 and back
        summed = ranks.all_reduce(tf.constant([4.0]))
        with tf.Session() as sess:
            assert sess.run(summed)[0] == 0.5  # HCCL sum / 8 ranks
    assert len(calls) == len(variables) and all(root == 0 for _, root in calls)
    assert ('int32', 0) in calls and len(assigned) >= len(variables)
    assert ranks.optimizer_wrapper(npu.wrap_optimizer) is npu.wrap_optimizer  # the NPU wrapper averages


# ---- the launcher ---------------------------------------------------------------------------------------
def test_launcher_environments():
    envs = launch.worker_environments(3, ports=[1001, 1002, 1003], gpus=['0', '1', '2', '3'])
    configs = [json.loads(e['TF_CONFIG']) for e in envs]
    assert all(c['cluster']['worker'] == ['127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003'] for c in configs)
    assert [c['task']['index'] for c in configs] == [0, 1, 2]
    assert [e['CUDA_VISIBLE_DEVICES'] for e in envs] == ['0', '1', '2']
    cpu = launch.worker_environments(2, ports=[1, 2], cpu=True)
    assert all(e['CUDA_VISIBLE_DEVICES'] == '' for e in cpu)
    none = launch.worker_environments(2, ports=[1, 2], gpus=[])
    assert all('CUDA_VISIBLE_DEVICES' not in e for e in none)
    assert len(set(launch.free_ports(4))) == 4


def test_launcher_stops_the_others_when_a_worker_fails(tmp_path):
    script = tmp_path / 'job.py'
    script.write_text('import json, os, sys, time\n'
                      'index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]\n'
                      'print("worker", index, "up", flush=True)\n'
                      'if index == 1:\n'
                      '    sys.exit(3)\n'
                      'time.sleep(120)\n')
    import subprocess
    import time
    start = time.time()
    result = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'launch.py'), '--nproc', '2', '--cpu',
                             '--', str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=100)
    assert result.returncode == 3
    assert time.time() - start < 60  # rank 0 was stopped, not waited for
    assert '[rank 0] worker 0 up' in result.stdout and '[rank 1] worker 1 up' in result.stdout
    assert 'rank 1 exited with status 3; stopping the others.' in result.stdout
