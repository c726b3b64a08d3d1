"""Flags that cannot work are refused up front: exit status 2 and one sentence, never a traceback."""
import os

import pytest

from conftest import make_image_folder, make_mnist, run_main

import main  # noqa: E402 (conftest puts the repository on the path)


def mnist_args(data_dir, out_dir, *extra):
    return ['--dataset', 'mnist', '--input_height=28', '--output_height=28', '--batch_size', '16',
            '--z_dim', '5', '--data_dir', data_dir, '--out_dir', out_dir] + list(extra)


def refused(capsys, argv, *fragments):
    """main.main(argv) exits with 2 and one error sentence holding every fragment."""
    status = main.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith('main.py: error:')]
    assert status == 2, err
    assert len(lines) == 1 and 'Traceback' not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_out_dir_that_is_a_file_or_cannot_be_created(mnist_dir, tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    refused(capsys, mnist_args(mnist_dir, str(a_file), '--train'), '--out_dir %s is a file, not a folder' % a_file)
    refused(capsys, mnist_args(mnist_dir, str(a_file / 'under'), '--train'), 'cannot write to the run folder')


def test_seed_above_two_to_the_32(mnist_dir, tmp_path, capsys):
    refused(capsys, mnist_args(mnist_dir, str(tmp_path), '--train', '--seed', str(2 ** 32)),
            '--seed must be at most 4294967295')


def test_absurd_z_dim_and_train_steps_name_the_limit(mnist_dir, tmp_path, capsys):
    out_dir = tmp_path / 'out'
    line = refused(capsys, mnist_args(mnist_dir, str(out_dir), '--train', '--z_dim', '1000000000'),
                   '--z_dim must be at most')
    limit = int(line.split('at most ')[1].split()[0])
    assert 100 <= limit <= main.MAX_Z_DIM
    refused(capsys, mnist_args(mnist_dir, str(out_dir), '--train', '--train_steps', str(10 ** 12)),
            '--train_steps must be at most 1000000000')
    assert not out_dir.exists()


@pytest.mark.parametrize('mode', [['--generate', '4'], ['--visualize'], ['--evaluate'], ['--freeze'], ['--export']])
def test_train_or_prepare_with_a_post_training_mode_are_separate_steps(mnist_dir, tmp_path, capsys, mode):
    refused(capsys, mnist_args(mnist_dir, str(tmp_path), '--train', *mode),
            '--train and %s are separate steps' % mode[0])
    refused(capsys, mnist_args(mnist_dir, str(tmp_path), '--prepare', *mode),
            '--prepare and %s are separate steps' % mode[0])


def test_help_says_the_modes_are_separate_steps(capsys):
    with pytest.raises(SystemExit):
        main.build_parser().parse_args(['--help'])
    assert 'are separate commands' in ' '.join(capsys.readouterr().out.split())


@pytest.mark.parametrize('name', ['../../x', '..', '/tmp/elsewhere', 'a/../../b'])
def test_out_name_must_stay_inside_out_dir(mnist_dir, tmp_path, capsys, name):
    refused(capsys, mnist_args(mnist_dir, str(tmp_path / 'out'), '--train', '--out_name', name),
            'must name a folder inside --out_dir')


def test_restart_needs_train(mnist_dir, tmp_path, capsys):
    refused(capsys, mnist_args(mnist_dir, str(tmp_path), '--generate', '4', '--restart'), 'add --train')


@pytest.mark.slow
def test_flags_that_do_not_fit_the_runs_checkpoint(tmp_path):
    make_mnist(tmp_path / 'data')
    data_dir, out_dir = str(tmp_path / 'data'), str(tmp_path / 'out')
    trained = run_main(*mnist_args(data_dir, out_dir, '--train', '--train_steps', '1', '--out_name', 'r'))
    assert trained.returncode == 0, trained.stdout
    for extra in (['--generate', '4'], ['--train', '--train_steps', '2']):
        result = run_main(*(mnist_args(data_dir, out_dir, '--out_name', 'r') + ['--z_dim', '6'] + extra))
        assert result.returncode == 2, result.stdout
        assert 'main.py: error: checkpoint' in result.stdout and 'trained with other settings' in result.stdout
        assert 'Traceback' not in result.stdout
    make_image_folder(tmp_path / 'data' / 'faces', n=8, corrupt=0)
    result = run_main('--dataset', 'faces', '--output_height', '16', '--batch_size', '4', '--data_dir', data_dir,
                      '--out_dir', out_dir, '--train', '--train_steps', '1',
                      '--init_checkpoint', os.path.join(out_dir, 'r', 'checkpoint'))
    assert result.returncode == 2, result.stdout
    assert 'trained with other settings' in result.stdout and 'Traceback' not in result.stdout
