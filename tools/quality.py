"""MNIST sample quality of training settings at equal numbers of training images: trains, scores, prints a table.

    python tools/quality.py --data_dir ./data --out_dir ./out/quality            # the README's table, 5 epochs
    python tools/quality.py --settings reference ema g1_ema bf16 --epochs 5 --eval_samples 10000

Each setting is one `python main.py --dataset mnist ... --train --epoch E` run followed by
`python main.py ... --evaluate` (the scores of metrics.py: label accuracy of conditionally generated
digits and the Frechet distance of their classifier features to the 10,000 test digits, with the
real-data floor beside it). Runs that already finished are resumed, which does nothing, so the script
can be rerun to complete or reprint the table. Commands are printed so any row can be reproduced by hand.
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> extra main.py flags; 'reference' is the reference implementation's defaults.
SETTINGS = {
    'reference': [],
    'ema': ['--ema_decay', '0.999'],
    'g1_ema': ['--g_steps', '1', '--ema_decay', '0.999'],
    'bf16': ['--precision_mode', 'allow_mix_precision'],  # CPU: bfloat16 mixed precision (TF 2.x, bf16 CPU)
}


def main_command(data_dir, out_dir, name, extra, *mode):
    return [sys.executable, os.path.join(REPO, 'main.py'), '--dataset', 'mnist', '--input_height=28',
            '--output_height=28', '--data_dir', data_dir, '--out_dir', out_dir, '--out_name', 'quality_' + name,
            '--sample_freq', '1000', '--ckpt_freq', '1000'] + list(extra) + list(mode)


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


def table(rows, epochs):
    lines = ['| setting | flags | epochs | FD (lower is better) | real-data FD floor | label accuracy |',
             '|---|---|---|---|---|---|']
    for name, extra, record in rows:
        lines.append('| %s | `%s` | %d | %.3f | %.3f | %.2f%% |' % (
            name, ' '.join(extra) or '(defaults)', epochs, record['fd'], record['fd_floor'],
            100 * record['label_accuracy']))
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data_dir', default='./data')
    parser.add_argument('--out_dir', default='./out/quality')
    parser.add_argument('--settings', nargs='+', default=['reference', 'ema'], choices=list(SETTINGS))
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--eval_samples', type=int, default=10000)
    parser.add_argument('--rescore', action='store_true', help='evaluate again even if scored before')
    args = parser.parse_args()
    rows = []
    for name in args.settings:
        extra = SETTINGS[name]
        run_dir = os.path.join(args.out_dir, 'quality_' + name)
        run(main_command(args.data_dir, args.out_dir, name, extra, '--train', '--epoch', str(args.epochs)))
        record = last_record(run_dir)
        if args.rescore or record is None or record.get('samples') != args.eval_samples:
            run(main_command(args.data_dir, args.out_dir, name, extra, '--evaluate',
                             '--eval_samples', str(args.eval_samples)))
            record = last_record(run_dir)
        rows.append((name, extra, record))
    print()
    print(table(rows, args.epochs))


if __name__ == '__main__':
    main()
