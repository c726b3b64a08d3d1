"""--evaluate and --eval_freq through main.py: metrics.jsonl, the best checkpoint, FID's missing graph."""
import json
import os

import pytest

from conftest import cache_narrow_classifier, make_image_folder, make_mnist, run_main


def test_mnist_evaluation_trains_the_classifier_with_eval_classifier_steps(mnist_dir, monkeypatch):
    import evaluate
    import inference
    import main
    import metrics
    asked = []
    monkeypatch.setattr(metrics, 'ensure_mnist_classifier',
                        lambda data_dir, steps, log: asked.append((data_dir, steps)))
    monkeypatch.setattr(metrics, 'mnist_reference_sets', lambda data_dir: None)
    options = main.resolve_flags(main.parse_flags(['--dataset', 'mnist', '--data_dir', mnist_dir,
                                                   '--eval_classifier_steps', '7']))
    config = main.trained_config(options, 'cpu', None, '/runs/r', {})
    evaluate.Evaluator(config, inference.net_config(config))
    assert asked == [(mnist_dir, 7)]


@pytest.mark.slow  # training runs through main.py
def test_eval_during_training_keeps_best_and_evaluate_mode_appends(tmp_path):
    make_mnist(tmp_path / 'data')
    cache_narrow_classifier(tmp_path / 'data', steps=60)  # main.py scores with it instead of training one
    args = ['--dataset', 'mnist', '--batch_size', '16', '--z_dim', '6', '--data_dir', tmp_path / 'data',
            '--out_dir', tmp_path / 'out', '--eval_samples', '120']
    trained = run_main(*(args + ['--train', '--train_steps', '4', '--eval_freq', '2', '--ema_decay', '0.9']))
    assert trained.returncode == 0, trained.stdout
    assert 'training the MNIST classifier' not in trained.stdout  # the cached one
    run_dir = tmp_path / 'out' / 'mnist_out28x28_z6'
    assert os.listdir(str(run_dir / 'checkpoint' / 'best'))
    evaluated = run_main(*(args + ['--evaluate']))
    assert evaluated.returncode == 0, evaluated.stdout
    assert 'training the MNIST classifier' not in evaluated.stdout
    with open(str(run_dir / 'metrics.jsonl')) as f:
        records = [json.loads(line) for line in f]
    assert [r['step'] for r in records] == [2, 4, 4]
    for record in records:
        assert 0 <= record['label_accuracy'] <= 1 and record['fd'] > 0 and record['fd_floor'] > 0
        assert record['n'] == 120 and record['ema_decay'] == 0.9 and record['g_steps'] == 2
    assert records[1]['fd'] == records[2]['fd']  # same latents, same weights: same score


@pytest.mark.slow
def test_fid_without_the_inception_graph_says_how_to_get_it(tmp_path):
    make_image_folder(tmp_path / 'data' / 'faces', n=8, corrupt=0)
    result = run_main('--dataset', 'faces', '--output_height', '16', '--batch_size', '4', '--train',
                      '--train_steps', '2', '--eval_freq', '1', '--data_dir', tmp_path / 'data',
                      '--out_dir', tmp_path / 'out')
    assert result.returncode == 2, result.stdout
    assert 'python download.py inception' in result.stdout and 'Traceback' not in result.stdout


@pytest.mark.slow
def test_evaluate_mode_without_the_inception_graph_is_one_sentence(tmp_path):
    make_image_folder(tmp_path / 'data' / 'faces', n=8, corrupt=0)
    args = ['--dataset', 'faces', '--output_height', '16', '--batch_size', '4', '--data_dir', tmp_path / 'data',
            '--out_dir', tmp_path / 'out']
    trained = run_main(*(args + ['--train', '--train_steps', '1']))
    assert trained.returncode == 0, trained.stdout
    result = run_main(*(args + ['--evaluate']))
    errors = [line for line in result.stdout.splitlines() if line.startswith('main.py: error:')]
    assert result.returncode == 2, result.stdout
    assert len(errors) == 1 and 'python download.py inception' in errors[0], result.stdout
    assert 'Traceback' not in result.stdout
