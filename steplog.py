"""The per-step training log line: its format and its one parser (standard library only, so that the
Ascend scripts' test/parse_log.py and the web viewer import it as main.py does)."""
import re

# Byte-compatible with the reference (the Ascend test scripts parse it): global step, epoch, epochs, batch
# index, batches per epoch, seconds since training start, losses.
FORMAT = '[%8d Epoch:[%2d/%2d] [%4d/%4d] time: %4.4f, d_loss: %.8f, g_loss: %.8f'
# Searched anywhere in a line, so that a logger's prefix does not hide it; a number field is anything up to
# the next comma or space ('nan' and 'inf' included).
PATTERN = re.compile(
    r'\[\s*(?P<step>\d+) Epoch:\[\s*(?P<epoch>\d+)/\s*(?P<epochs>\d+)\] \[\s*(?P<batch>\d+)/\s*(?P<batches>\d+)\]'
    r' time: (?P<time>[^\s,]+), d_loss: (?P<d_loss>[^\s,]+), g_loss: (?P<g_loss>[^\s,]+)')
INT_FIELDS = ('step', 'epoch', 'epochs', 'batch', 'batches')
FLOAT_FIELDS = ('time', 'd_loss', 'g_loss')


def format_line(step, epoch, epochs, batch, batches, seconds, d_loss, g_loss):
    """The reference's per-step log line."""
    return FORMAT % (step, epoch, epochs, batch, batches, seconds, d_loss, g_loss)


def parse_line(line):
    """Dict of a step line's fields (ints, and floats that may be nan or inf, as printed), or None for any
    other line and for a step line whose numbers do not parse (one still being written)."""
    match = PATTERN.search(line)
    if not match:
        return None
    values = match.groupdict()
    fields = dict((key, int(values[key])) for key in INT_FIELDS)
    try:
        fields.update((key, float(values[key])) for key in FLOAT_FIELDS)
    except ValueError:
        return None
    return fields
