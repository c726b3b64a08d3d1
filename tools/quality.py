"""MNIST sample quality of training settings at equal numbers of training images, over seeds: trains, scores, prints a table.

    python tools/quality.py --data_dir ./data --out_dir ./out/quality                 # reference, ema: 5 epochs, 3 seeds
    python tools/quality.py --settings ema g1 ttur smooth r1 --epochs 2 --seeds 0    # a quick screen
    python tools/quality.py --settings reference ema --epochs 5 --seeds 0 1 2 --eval_samples 10000

Each (setting, seed) is one `python main.py --dataset mnist ... --train --epoch E --seed S` run followed by
`python main.py ... --evaluate` (metrics.py's scores: label accuracy of conditionally generated digits,
the Frechet distance of their classifier features to the 10,000 test digits, the same within each class,
and k-nearest-neighbour precision and recall), each with its real-data floor. The table gives the mean
and standard deviation over the seeds, and each score's ratio to its floor. Runs that already finished
are resumed, which does nothing, so the script can be rerun to complete or reprint the table. Commands
are printed so any row can be reproduced by hand.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> extra main.py flags; 'reference' is the reference implementation's defaults.
SETTINGS = {
    'reference': [],
    'recipe': ['--recipe', 'quality'],  # main.py's RECIPES['quality']
    'ema': ['--ema_decay', '0.999'],
    'g1': ['--g_steps', '1', '--ema_decay', '0.999'],
    'ttur': ['--d_learning_rate', '0.0004', '--g_learning_rate', '0.0001', '--ema_decay', '0.999'],
    'ttur_celeba': ['--d_learning_rate', '1e-05', '--g_learning_rate', '0.0005', '--ema_decay', '0.999'],
    'ema_late': ['--ema_decay', '0.9999', '--ema_start', '2000'],
    'smooth': ['--label_smoothing', '0.1', '--ema_decay', '0.999'],
    'r1': ['--r1_gamma', '1.0', '--ema_decay', '0.999'],
    'r1_10': ['--r1_gamma', '10.0', '--ema_decay', '0.999'],
    'beta2': ['--beta2', '0.99', '--ema_decay', '0.999'],
    'decay': ['--lr_decay_epochs', '2', '--ema_decay', '0.999'],
    'ttur_r1': ['--d_learning_rate', '0.0004', '--g_learning_rate', '0.0001', '--r1_gamma', '1.0', '--ema_decay',
                '0.999'],
    'bf16': ['--precision_mode', 'allow_mix_precision'],  # CPU: bfloat16 mixed precision (TF 2.x, bf16 CPU)
}

# score -> (floor key, how the bar reads it): at most `limit` x the floor (FDs), at least `limit` x it (recall)
BAR = {'fd': 2.5, 'fd_class': 3.0, 'recall': 0.8, 'label_accuracy': 0.99}
SCORES = ('fd', 'fd_class', 'precision', 'recall', 'label_accuracy')


def run_name(name, seed):
    return 'quality_%s_s%d' % (name, seed)


def main_command(data_dir, out_dir, name, extra, seed, *mode):
    return [sys.executable, os.path.join(REPO, 'main.py'), '--dataset', 'mnist', '--input_height=28',
            '--output_height=28', '--data_dir', data_dir, '--out_dir', out_dir, '--out_name', run_name(name, seed),
            '--seed', str(seed), '--sample_freq', '1000', '--ckpt_freq', '1000'] + list(extra) + list(mode)


def last_record(run_dir):
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        lines = [line for line in f if line.endswith('\n')]
    return json.loads(lines[-1]) if lines else None


def run(command):
    print('$ ' + ' '.join(command), flush=True)
    status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    if status:
        sys.exit('quality.py: %s exited with status %d (see its log.txt)' % (command[1], status))


def needs_scoring(record, epochs, eval_samples):
    """True unless the run's last record scores it after `epochs` epochs with eval_samples digits and every
    score (a run trained on to more epochs still ends with the record of its shorter training)."""
    return (record is None or record.get('epoch') != epochs or record.get('samples') != eval_samples
            or 'recall' not in record)


def summarize(records):
    """Mean and standard deviation over seeds of every score, and the floors (the same in every record)."""
    summary = {}
    for key in SCORES:
        values = [r[key] for r in records if r.get(key) is not None]
        summary[key] = (float(np.mean(values)), float(np.std(values))) if values else None
        floors = [r[key + '_floor'] for r in records if r.get(key + '_floor') is not None]
        summary[key + '_floor'] = float(np.mean(floors)) if floors else None
    return summary


def meets_bar(summary):
    """True when the means reach the bar: FD and per-class FD within their multiples of the floor, recall
    at least its fraction of the real-data recall, label accuracy at least 99%."""
    try:
        return (summary['fd'][0] <= BAR['fd'] * summary['fd_floor']
                and summary['fd_class'][0] <= BAR['fd_class'] * summary['fd_class_floor']
                and summary['recall'][0] >= BAR['recall'] * summary['recall_floor']
                and summary['label_accuracy'][0] >= BAR['label_accuracy'])
    except (KeyError, TypeError):  # a score or floor missing: records of an older evaluation
        return False


def _cell(summary, key, ratio):
    value = summary.get(key)
    if value is None:
        return 'n/a'
    text = '%.3f +- %.3f' % value
    floor = summary.get(key + '_floor')
    if ratio and floor:
        text += ' (%.2fx)' % (value[0] / floor)
    return text


def table(rows, epochs):
    """Markdown table of (name, extra flags, seeds, summary) rows, then the real-data floors."""
    lines = ['| setting | flags | epochs | seeds | FD | per-class FD | precision | recall | label accuracy | bar |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name, extra, seeds, summary in rows:
        accuracy = summary.get('label_accuracy')
        lines.append('| %s | `%s` | %d | %d | %s | %s | %s | %s | %s | %s |' % (
            name, ' '.join(extra) or '(defaults)', epochs, seeds, _cell(summary, 'fd', True),
            _cell(summary, 'fd_class', True), _cell(summary, 'precision', False), _cell(summary, 'recall', True),
            '%.2f%%' % (100 * accuracy[0]) if accuracy else 'n/a', 'met' if meets_bar(summary) else 'not met'))
    if rows:
        floors = rows[0][3]
        lines.append('| real data (floor) | | | | %s | %s | %s | %s | | |' % tuple(
            '%.3f' % floors[k + '_floor'] if floors.get(k + '_floor') is not None else 'n/a'
            for k in ('fd', 'fd_class', 'precision', 'recall')))
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data_dir', default='./data')
    parser.add_argument('--out_dir', default='./out/quality')
    parser.add_argument('--settings', nargs='+', default=['reference', 'ema'], choices=list(SETTINGS))
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--eval_samples', type=int, default=10000)
    parser.add_argument('--rescore', action='store_true', help='evaluate again even if scored before')
    args = parser.parse_args()
    rows = []
    for name in args.settings:
        extra, records = SETTINGS[name], []
        for seed in args.seeds:
            run_dir = os.path.join(args.out_dir, run_name(name, seed))
            run(main_command(args.data_dir, args.out_dir, name, extra, seed, '--train', '--epoch', str(args.epochs)))
            record = last_record(run_dir)
            if args.rescore or needs_scoring(record, args.epochs, args.eval_samples):
                run(main_command(args.data_dir, args.out_dir, name, extra, seed, '--evaluate',
                                 '--eval_samples', str(args.eval_samples)))
                record = last_record(run_dir)
            records.append(record)
        rows.append((name, extra, len(records), summarize(records)))
        print(table(rows[-1:], args.epochs).splitlines()[2], flush=True)
    print()
    print(table(rows, args.epochs))


if __name__ == '__main__':
    main()
