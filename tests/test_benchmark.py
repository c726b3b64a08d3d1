"""tools/benchmark.py: its pure helpers, the reference's rebuilt step, quick runs of tiny configurations."""
import json
import os
import sys

import numpy as np
import pytest

from conftest import REPO, run_script

sys.path.insert(0, os.path.join(REPO, 'tools'))
import benchmark  # noqa: E402  (imports no TensorFlow: children do)
import reference_step  # noqa: E402


def run_benchmark(*args, timeout=300):
    return run_script(os.path.join('tools', 'benchmark.py'), *args, timeout=timeout)


def test_flops_per_image_of_the_64x64_step():
    # forward GFLOP of the 64x64 G and D give 3.9 and 5.5 per image of a step with one and two G updates
    assert benchmark.gflop_per_image(0.326, 0.324, 1) == pytest.approx(3.9, abs=0.01)
    assert benchmark.gflop_per_image(0.326, 0.324, 2) == pytest.approx(5.5, abs=0.03)


def test_rate_stats_median_and_spread():
    stats = benchmark.rate_stats([1.0, 2.0, 0.5, 1.0, 1.0], batch=64)
    assert stats['images_per_s'] == 64.0
    assert stats['min'] == 32.0 and stats['max'] == 128.0
    assert stats['min'] <= stats['p10'] <= stats['images_per_s'] <= stats['p90'] <= stats['max']


def test_rounds_pool_their_steps_and_keep_each_median():
    def result(steps, rss, finite=True, trace=None):
        return dict(status='ok', step_seconds=steps, images_per_s=64 / float(np.median(steps)), losses_finite=finite,
                    cpu_busy=1.8, others_busy=0.1, peak_rss_mb=rss, last_d_loss=1.0, trace=trace)
    first, second = result([1.0, 1.0, 1.0], 900.0, trace={'file': 't.json'}), result([0.5, 0.5, 2.0], 800.0, False)
    row = benchmark.merge_rounds([first, second], batch=64)
    assert row['step_seconds'] == [1.0, 1.0, 1.0, 0.5, 0.5, 2.0] and row['steps'] == 6
    assert row['images_per_s'] == 64.0  # median of the pooled steps, not of the two medians (64 and 128)
    assert row['round_images_per_s'] == [64.0, 128.0]
    assert row['peak_rss_mb'] == 900.0 and not row['losses_finite'] and row['trace'] == {'file': 't.json'}
    assert benchmark.merge_rounds([first], batch=64)['round_images_per_s'] == [64.0]
    failed = dict(status='error', reason='did not finish')
    assert benchmark.merge_rounds([first, failed], batch=64) == failed


def test_config_names():
    assert benchmark.parse_config('dcgan64_g2_prepared') == dict(
        name='dcgan64_g2_prepared', net='dcgan64_g2', input='prepared', mixed=False)
    assert benchmark.parse_config('mnist_bare_mixed')['mixed']
    assert benchmark.parse_config('mnist_reference')['input'] == 'reference'
    for bad in ('dcgan64_prepared', 'mnist', 'mnist_disk', 'mnist_bare_fp16', 'dcgan64_g1_reference',
                'mnist_reference_mixed'):
        with pytest.raises(ValueError):
            benchmark.parse_config(bad)


def test_comparisons_put_inputs_precisions_and_the_reference_side_by_side():
    def row(net, inp, rate, mixed=False, precision='float32', tf_version='2.21.0'):
        return dict(name=net + '_' + inp, net=net, input=inp, mixed=mixed, status='ok', images_per_s=rate,
                    precision=precision, losses_finite=True, g_steps=benchmark.NETS[net]['g_steps'],
                    counted_gflop_per_image=0.5, tf_version=tf_version,
                    input_label=benchmark.input_label(net, inp, tf_version))
    rows = [row('dcgan64_g2', 'bare', 100.0), row('dcgan64_g2', 'synthetic', 96.0),
            row('dcgan64_g2', 'prepared', 80.0), row('dcgan64_g2', 'synthetic', 150.0, True, 'bfloat16 mixed'),
            row('dcgan64_g2', 'reference', 20.0, tf_version='1.15.0')]
    benchmark.add_derived(rows, reachable=600.0)
    assert rows[2]['ratio_to_floor'] == pytest.approx(0.8)
    assert rows[2]['achieved_gflops'] == pytest.approx(80.0 * 5.5)
    assert rows[4]['ratio_to_floor'] is None and rows[4]['input_label'] == 'reference: JPEGs, TF 1.15.0'
    ratios = dict((c['what'], c['ratio']) for c in benchmark.comparisons(rows))
    assert ratios == {
        'dcgan64_g2: (a) prepared uint8 cache / (c) in-memory synthetic': pytest.approx(80.0 / 96.0),
        'dcgan64_g2: (c) in-memory synthetic / bare graph': pytest.approx(0.96),
        'dcgan64_g2 (c) in-memory synthetic: bfloat16 mixed / float32': pytest.approx(150.0 / 96.0),
        'dcgan64_g2 (a) prepared uint8 cache: ours / the reference on TF 1.15.0 (20.0 img/s)':
            pytest.approx(4.0)}


def _reference_variables(tf, size, channels, y_dim, batch):
    graph = reference_step.build(tf, size, channels, y_dim, batch)
    shapes = dict((v.op.name, v.get_shape().as_list()) for v in tf.global_variables()
                  if v.op.name.startswith(('generator/', 'discriminator/')) and 'Adam' not in v.op.name)
    return graph, shapes


@pytest.mark.parametrize('net', ['dcgan64', 'mnist'])
def test_reference_rebuilt_has_its_variables_and_trains(net, tmp_path):
    from PIL import Image
    from tf_compat import tf
    import test_model
    rng = np.random.RandomState(0)
    batch = 4
    with tf.Graph().as_default():
        if net == 'mnist':
            graph, shapes = _reference_variables(tf, 28, 1, 10, batch)
            batches = reference_step.array_batches(rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32),
                                                   np.eye(10, dtype=np.float32)[rng.randint(0, 10, 8)], batch)
            assert shapes == test_model.REFERENCE_MNIST
        else:
            graph, shapes = _reference_variables(tf, 64, 3, 0, batch)
            paths = []
            for i in range(batch):  # larger than the reference's 108 x 108 centre crop
                paths.append(str(tmp_path / ('%d.jpg' % i)))
                Image.fromarray(rng.randint(0, 256, (130, 120, 3)).astype(np.uint8)).save(paths[-1])
            batches = reference_step.jpeg_batches(paths, batch)
            first, _ = next(reference_step.jpeg_batches(paths, batch))
            assert first.shape == (batch, 64, 64, 3) and first.dtype == np.float32
            assert -1.0 <= first.min() < first.max() <= 1.0
            assert shapes == test_model.REFERENCE_64
        moving_mean = [v for v in tf.global_variables() if v.op.name == 'generator/g_bn0/moving_mean'][0]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = reference_step.train_step(sess, graph, batches, np.random.RandomState(1))
            assert np.isfinite(losses).all() and losses[0] > 0 and losses[1] > 0
            # the reference's batch norm moves its averages in every training-mode pass (5 G passes per step here)
            assert np.abs(sess.run(moving_mean)).max() > 0


def test_unknown_config_is_a_usage_error():
    result = run_benchmark('--configs', 'mnist_disk', timeout=60)
    assert result.returncode == 2 and 'unknown configuration' in result.stdout
    result = run_benchmark('--reference_python', '/nonexistent/python', timeout=60)
    assert result.returncode == 2 and 'not an executable file' in result.stdout
    result = run_benchmark('--rounds', 0, timeout=60)
    assert result.returncode == 2 and '--rounds' in result.stdout and 'Traceback' not in result.stdout


# The quick runs use batches of 16: they prove that everything runs and reports, and their time is mostly
# each child process's start-up and graph building (one child per configuration and round), so the reference
# runs in the one-round run below.
@pytest.mark.slow
def test_quick_run_prints_the_table_and_writes_json(tmp_path):
    path = tmp_path / 'bench.json'
    result = run_benchmark('--quick', '--configs', 'mnist_synthetic', 'mnist_folder',
                           '--reference_python', 'none', '--mnist_dir', tmp_path / 'no-mnist',
                           '--steps', 3, '--warmup', 1, '--rounds', 2, '--batch_size', 16, '--json', path)
    assert result.returncode == 0, result.stdout
    assert 'reachable float32 compute' in result.stdout and 'mnist_synthetic' in result.stdout
    assert 'PASS' not in result.stdout and 'MISS' not in result.stdout  # measurements, no verdicts
    with open(str(path)) as f:
        report = json.load(f)
    for key in ('tf_version', 'machine', 'compute', 'reachable_gflops', 'settings', 'rows', 'comparisons'):
        assert key in report
    assert set(report['machine']['flags']) >= {'avx512f', 'avx512_bf16', 'amx_bf16'}
    assert report['reachable_gflops'] > 0
    rows = dict((r['name'], r) for r in report['rows'])
    run = rows['mnist_synthetic']
    assert report['settings']['rounds'] == 2 and '2 interleaved rounds' in result.stdout
    assert run['status'] == 'ok' and run['precision'] == 'float32' and len(run['step_seconds']) == 6
    assert run['pipeline'] == 'graph' and 'input pipeline:' not in result.stdout  # auto: MNIST in memory
    assert len(run['round_images_per_s']) == 2
    assert run['images_per_s'] > 0 and run['min'] <= run['images_per_s'] <= run['max']
    assert run['losses_finite'] and run['peak_rss_mb'] > 100  # TensorFlow alone is more than that
    assert run['faults_per_step'] >= 0 and 'flt/step' in result.stdout
    assert 0 < run['input_ms_per_batch'] < 1000
    assert run['ratio_to_floor'] is None  # no bare-graph run of this network in this report
    assert run['achieved_gflops'] == pytest.approx(run['images_per_s'] * run['gflop_per_image'])
    assert 0.4 < run['gflop_per_image'] < 0.7  # the conditional MNIST step, counted from its graph
    assert rows['mnist_folder']['status'] == 'n/a'


@pytest.mark.slow
def test_input_pipeline_and_malloc_defaults_can_be_forced_to_compare_and_the_reference_runs(tmp_path):
    path = tmp_path / 'bench.json'
    result = run_benchmark('--quick', '--configs', 'mnist_synthetic', 'mnist_reference', '--input_pipeline', 'host',
                           '--malloc_defaults', '--reference_python', 'none', '--mnist_dir', tmp_path / 'no-mnist',
                           '--steps', 2, '--warmup', 1, '--batch_size', 16, '--json', path)
    assert result.returncode == 0, result.stdout
    assert 'input pipeline: host' in result.stdout and "malloc at glibc's defaults" in result.stdout
    with open(str(path)) as f:
        report = json.load(f)
    assert report['settings']['input_pipeline'] == 'host' and report['settings']['malloc_defaults']
    assert [(r['pipeline'], r['status']) for r in report['rows']] == [
        ('host', 'ok'), ('feed_dict, decoded on the training thread', 'ok')]  # the reference feeds its own input
    run, reference = report['rows']  # the reference on this runtime only (--reference_python none)
    assert reference['name'] == 'mnist_reference' and reference['tf_version'] == report['tf_version']
    assert len(reference['step_seconds']) == 2 and reference['losses_finite'] and reference['ratio_to_floor'] is None
    assert reference['gflop_per_image'] > run['gflop_per_image']  # the reference convolves the tiled labels too
