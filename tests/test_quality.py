"""tools/quality.py: each setting is a valid main.py command line, and the table reads the scored records."""
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))
import main  # noqa: E402
import quality  # noqa: E402


@pytest.mark.parametrize('name', sorted(quality.SETTINGS))
@pytest.mark.parametrize('mode', [('--train', '--epoch', '5'), ('--evaluate', '--eval_samples', '100')])
def test_every_setting_is_a_valid_main_command(name, mode):
    command = quality.main_command('/data', '/out', name, quality.SETTINGS[name], 2, *mode)
    assert command[1] == os.path.join(REPO, 'main.py')
    config = main.resolve_flags(main.build_parser().parse_args(command[2:]))
    main.validate_numbers(config)  # raises main.UsageError on a flag main.py would refuse
    assert (config.dataset, config.out_name, config.output_height, config.seed) == (
        'mnist', 'quality_%s_s2' % name, 28, 2)
    for flag, value in zip(quality.SETTINGS[name][::2], quality.SETTINGS[name][1::2]):
        assert str(getattr(config, flag.lstrip('-'))) == value


def record(fd, fd_class, recall, accuracy):
    return {'fd': fd, 'fd_floor': 4.0, 'fd_class': fd_class, 'fd_class_floor': 10.0, 'precision': 0.8,
            'precision_floor': 0.75, 'recall': recall, 'recall_floor': 0.7, 'label_accuracy': accuracy}


def test_summary_is_the_mean_and_spread_over_seeds():
    summary = quality.summarize([record(9.0, 30.0, 0.5, 0.99), record(11.0, 32.0, 0.7, 0.97)])
    assert summary['fd'] == (10.0, 1.0) and summary['fd_class'] == (31.0, 1.0)
    assert summary['recall'][0] == pytest.approx(0.6) and summary['label_accuracy'][0] == pytest.approx(0.98)
    assert summary['fd_floor'] == 4.0 and summary['recall_floor'] == 0.7


@pytest.mark.parametrize('scores, met', [((10.0, 30.0, 0.56, 0.99), True),  # every limit reached exactly
                                         ((10.1, 30.0, 0.56, 0.99), False), ((10.0, 30.1, 0.56, 0.99), False),
                                         ((10.0, 30.0, 0.55, 0.99), False), ((10.0, 30.0, 0.56, 0.989), False)])
def test_the_bar(scores, met):
    assert quality.meets_bar(quality.summarize([record(*scores)])) == met


def test_table_lists_each_setting_with_its_flags_scores_ratios_and_floors():
    summary = quality.summarize([record(9.0, 30.0, 0.5, 0.99), record(11.0, 32.0, 0.7, 0.97)])
    text = quality.table([('reference', [], 2, summary), ('bf16', quality.SETTINGS['bf16'], 2, summary)], 5)
    lines = text.splitlines()
    assert lines[2] == ('| reference | `(defaults)` | 5 | 2 | 10.000 +- 1.000 (2.50x) | 31.000 +- 1.000 (3.10x) | '
                        '0.800 +- 0.000 | 0.600 +- 0.100 (0.86x) | 98.00% | not met |')
    assert lines[3].startswith('| bf16 | `--precision_mode allow_mix_precision` | 5 | 2 |')
    assert lines[4] == '| real data (floor) | | | | 4.000 | 10.000 | 0.750 | 0.700 | | |'


def test_last_record_skips_an_unfinished_line(tmp_path):
    (tmp_path / 'metrics.jsonl').write_text('{"fd": 1.0}\n{"fd": 2.0}\n{"fd": 3')  # a write cut short
    assert quality.last_record(str(tmp_path)) == {'fd': 2.0}
    assert quality.last_record(str(tmp_path / 'missing')) is None


def test_a_run_trained_on_to_more_epochs_is_scored_again():
    scored = dict(record(9.0, 30.0, 0.5, 0.99), epoch=5, samples=10000)
    assert not quality.needs_scoring(scored, 5, 10000)
    assert quality.needs_scoring(dict(scored, epoch=2), 5, 10000)  # the record of its 2-epoch training
    assert quality.needs_scoring(dict(scored, samples=1000), 5, 10000)
    assert quality.needs_scoring(dict((k, v) for k, v in scored.items() if k != 'recall'), 5, 10000)
    assert quality.needs_scoring(None, 5, 10000)
