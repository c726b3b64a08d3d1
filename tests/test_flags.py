"""Flags that cannot work are refused up front: exit status 2 and one sentence, never a traceback."""
import os
import subprocess
import sys

import pytest

from conftest import REPO, make_image_folder, make_mnist, run_main

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


# ---- the run configuration -------------------------------------------------------------------------------
def resolved(*argv):
    flags = main.build_parser().parse_args([str(a) for a in argv])
    return flags, main.resolve_flags(flags)


def test_the_run_configuration_is_immutable():
    _, config = resolved('--dataset', 'mnist')
    with pytest.raises(AttributeError):
        config.batch_size = 8
    with pytest.raises(AttributeError):
        config.run_dir = '/elsewhere'
    assert config.batch_size == 64 and config.run_dir is None


def test_resolving_and_validating_leave_the_parsed_flags_unchanged():
    flags, config = resolved('--dataset', 'faces', '--device', 'CPU', '--iterations_per_loop', '2',
                             '--output_height', '32')
    parsed = dict(vars(flags))
    main.validate_numbers(config)
    assert vars(flags) == parsed
    assert (flags.input_height, flags.input_width, flags.output_width, flags.device, flags.input_pipeline) == (
        None, None, None, 'CPU', 'auto')
    assert (config.input_height, config.input_width, config.output_height, config.output_width) == (108, 108, 32, 32)
    assert (config.device, config.input_pipeline) == ('cpu', 'graph')
    _, mnist = resolved('--dataset', 'mnist')
    assert (mnist.input_height, mnist.output_width, mnist.input_pipeline) == (28, 28, 'auto')


def test_main_leaves_the_parsed_flags_unchanged(mnist_dir, tmp_path, capsys, monkeypatch):
    parsed = []
    parse_args = main.Parser.parse_args

    def keep(self, *args, **kwargs):
        flags = parse_args(self, *args, **kwargs)
        parsed.append((flags, dict(vars(flags))))
        return flags
    monkeypatch.setattr(main.Parser, 'parse_args', keep)
    refused(capsys, mnist_args(mnist_dir, str(tmp_path), '--generate', '4', '--device', 'CPU'), 'no checkpoint in')
    flags, as_parsed = parsed[-1]
    assert vars(flags) == as_parsed and flags.device == 'CPU' and flags.input_width is None


def test_an_evaluation_error_of_a_post_training_mode_is_one_sentence_and_status_2(faces_dir, tmp_path, capsys,
                                                                                 monkeypatch):
    import inference

    def evaluate_only(config, trained_with):  # stands in for the checkpoint: the evaluator as run_modes makes it
        import evaluate
        evaluate.Evaluator(config, inference.net_config(config), trained_with=trained_with or None)
        return 0
    monkeypatch.setattr(main, 'check_trained_run', lambda config, run_dir: None)
    monkeypatch.setattr(inference, 'run_modes', evaluate_only)
    line = refused(capsys, ['--dataset', 'faces', '--output_height', '16', '--data_dir', faces_dir,
                            '--out_dir', str(tmp_path / 'out'), '--evaluate'],
                   'FID needs the Inception graph', 'python download.py inception')
    assert line.endswith('or point --inception_graph to a copy.')


def test_conditional_comes_from_the_data(mnist_dir, faces_dir):
    _, mnist = resolved('--dataset', 'mnist', '--data_dir', mnist_dir)
    dataset = main.open_dataset(mnist)
    assert (dataset.conditional, dataset.channels, dataset.spec) == (True, 1, None)
    _, faces = resolved('--dataset', 'faces', '--output_height', '16', '--data_dir', faces_dir)
    dataset = main.open_dataset(faces)
    assert (dataset.conditional, dataset.channels, dataset.spec.key()) == (False, 3, 'nocrop_16x16x3')


@pytest.mark.parametrize('dataset, saved, conditional, channels', [
    ('mnist', {}, True, 1),  # no config.json: as the flags say
    ('faces', {}, False, 3),
    ('mnist', {'dataset': 'mnist', 'channels': 1}, True, 1),  # saved before config.json recorded conditional
    ('faces', {'dataset': 'mnist', 'channels': 1}, True, 1),
    ('mnist', {'dataset': 'mnist', 'channels': 1, 'conditional': False}, False, 1),  # the saved value decides
    ('faces', {'dataset': 'faces', 'channels': 1, 'conditional': True}, True, 1),
])
def test_conditional_of_a_trained_run_comes_from_its_saved_config(dataset, saved, conditional, channels):
    import inference
    _, options = resolved('--dataset', dataset, '--output_height', '28')
    config = main.trained_config(options, 'cpu', None, '/runs/r', saved)
    assert (config.conditional, config.channels, config.device, config.run_dir) == (
        conditional, channels, 'cpu', '/runs/r')
    assert (config.image_spec is None) == conditional
    assert inference.net_config(config).y_dim == (10 if conditional else 0)


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


def test_recipe_sets_exactly_its_flags_and_given_flags_win():
    default = main.resolve_flags(main.parse_flags(['--dataset', 'mnist']))
    quality = main.resolve_flags(main.parse_flags(['--dataset', 'mnist', '--recipe', 'quality']))
    changed = dict((name, getattr(quality, name)) for name in main.FLAG_NAMES
                   if getattr(quality, name) != getattr(default, name))
    assert changed == dict(main.RECIPES['quality'], recipe='quality')
    assert main.RECIPES['reference'] == {} and main.RECIPES['quality']
    given = main.parse_flags(['--recipe', 'quality', '--ema_decay', '0.99'])
    assert given.ema_decay == 0.99
    assert main.parse_flags(['--ema_decay', '0.5', '--recipe', 'quality']).ema_decay == 0.5  # order does not matter


def test_unknown_recipe_is_refused(capsys):
    refused(capsys, ['--dataset', 'mnist', '--recipe', 'best'], '--recipe', 'quality', 'reference')


def test_a_mistake_in_the_numbers_is_reported_before_tensorflow_loads():
    code = ('import sys; import main; status = main.main(["--batch_size", "0", "--train"]); '
            'print(status, "tensorflow" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert result.stdout.splitlines()[-2:] == ['main.py: error: --batch_size must be at least 1, got 0.',
                                               '2 False'], result.stdout
