"""Performance summary of a training log for the Ascend test scripts: FPS after warm-up, losses, device.

Usage: python3 parse_log.py TRAIN_LOG BATCH_SIZE LOSS_FILE
Writes the d_loss of every step line to LOSS_FILE (one per line) and prints one line for the shell:
    <images/sec> <seconds/step> <last d_loss> <device> <step lines>
Exits 1 with a message on stderr when the log holds no step line. Standard library only (Python 3.7+).
"""
import os
import platform
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root
import steplog  # noqa: E402  (main.py's step-line format and parser, standard library only)

# main.py's first line: 'run folder ... | device cpu | precision float32 | TensorFlow 2.21.0'
DEVICE_RE = re.compile(r'^run folder .* \| device (\w+) \| precision ')
WARMUP_LINES = 5  # step lines skipped at least (graph building, first-step compilation)
WARMUP_FRACTION = 0.1  # ... or this share of them, whichever is more


def parse_steps(lines):
    """(step, seconds since training start, d_loss text) of each step line, in log order."""
    steps = []
    for line in lines:
        fields = steplog.parse_line(line)
        if fields:
            steps.append((fields['step'], fields['time'], '%.8f' % fields['d_loss']))  # as main.py prints it
    return steps


def kept_after_warmup(steps):
    """The step lines the throughput is measured over: after max(5, 10%) warm-up lines when at least two
    remain; otherwise all but the first (compilation) when that leaves two; otherwise all of them."""
    skip = max(WARMUP_LINES, int(len(steps) * WARMUP_FRACTION))
    if len(steps) - skip >= 2:
        return steps[skip:]
    if len(steps) >= 3:
        return steps[1:]
    return steps


def images_per_second(steps, batch_size):
    """Average throughput over the kept step lines: batch * (steps between first and last) / seconds.

    A single step line gives batch * step / its time (seconds since training start). 0.0 when no
    time has passed (the clock's resolution is finer than the log's 0.1 ms, so only on a broken log).
    """
    kept = kept_after_warmup(steps)
    if len(kept) >= 2:
        (first_step, first_time, _), (last_step, last_time, _) = kept[0], kept[-1]
        images, seconds = batch_size * (last_step - first_step), last_time - first_time
    else:
        images, seconds = batch_size * kept[0][0], kept[0][1]
    return images / seconds if seconds > 0 else 0.0


def device_of(lines):
    """npu, gpu or cpu from main.py's start line; the machine type (as `uname -m`) when it is missing."""
    for line in lines:
        match = DEVICE_RE.match(line)
        if match:
            return match.group(1)
    return platform.machine() or 'unknown'


def main(argv):
    if len(argv) != 3:
        print('usage: parse_log.py TRAIN_LOG BATCH_SIZE LOSS_FILE', file=sys.stderr)
        return 2
    log_path, batch_size, loss_path = argv[0], int(argv[1]), argv[2]
    with open(log_path, errors='replace') as f:
        lines = f.readlines()
    steps = parse_steps(lines)
    if not steps:
        print('no step lines ("[  step Epoch:[..] ... d_loss: ...") in %s' % log_path, file=sys.stderr)
        return 1
    with open(loss_path, 'w') as f:
        f.writelines(d_loss + '\n' for _, _, d_loss in steps)
    fps = images_per_second(steps, batch_size)
    seconds_per_step = batch_size / fps if fps > 0 else 0.0
    fps_text = '%.2f' % fps if fps >= 1 else '%.4f' % fps  # slow CPU runs keep their digits
    print('%s %.4f %s %s %d' % (fps_text, seconds_per_step, steps[-1][2], device_of(lines), len(steps)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
