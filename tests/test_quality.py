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
    command = quality.main_command('/data', '/out', name, quality.SETTINGS[name], *mode)
    assert command[1] == os.path.join(REPO, 'main.py')
    flags = main.build_parser().parse_args(command[2:])
    main.apply_defaults(flags)
    main.validate_numbers(flags)  # raises main.UsageError on a flag main.py would refuse
    assert (flags.dataset, flags.out_name, flags.output_height) == ('mnist', 'quality_' + name, 28)
    for flag, value in zip(quality.SETTINGS[name][::2], quality.SETTINGS[name][1::2]):
        assert str(getattr(flags, flag.lstrip('-'))) == value


def test_table_lists_each_setting_with_its_flags_and_scores():
    record = {'fd': 12.3456, 'fd_floor': 4.4151, 'label_accuracy': 0.98765}
    text = quality.table([('reference', [], record), ('bf16', quality.SETTINGS['bf16'], record)], 5)
    lines = text.splitlines()
    assert lines[2] == '| reference | `(defaults)` | 5 | 12.346 | 4.415 | 98.77% |'
    assert lines[3] == '| bf16 | `--precision_mode allow_mix_precision` | 5 | 12.346 | 4.415 | 98.77% |'


def test_last_record_skips_an_unfinished_line(tmp_path):
    (tmp_path / 'metrics.jsonl').write_text('{"fd": 1.0}\n{"fd": 2.0}\n{"fd": 3')  # a write cut short
    assert quality.last_record(str(tmp_path)) == {'fd': 2.0}
    assert quality.last_record(str(tmp_path / 'missing')) is None
