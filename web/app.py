"""Read-only local web page to watch and compare the DCGAN runs under an output folder (never imports TensorFlow)."""
import argparse
import collections
import json
import math
import os
import re
import stat as stat_mode
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root
import steplog  # noqa: E402  (main.py's step-line format and parser)

from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.routing import Map

HERE = os.path.dirname(os.path.abspath(__file__))

# A run counts as "live" (still being written to) when log.txt, metrics.jsonl, a sample grid or the
# checkpoint index was modified within this many seconds.
LIVE_SECONDS = 60

SAMPLE_NAME = re.compile(r'^train_(\d+)\.png$')

# What the file route may serve: top-level files by name, and image files in these sub-folders.
SERVED_TOP_FILES = ('log.txt', 'config.json', 'metrics.jsonl')
SERVED_DIRS = {'samples': ('.png',), 'generated': ('.png',), 'visualize': ('.png', '.gif')}
# Markers of a run folder; other sub-folders of out_dir are reported as ignored.
RUN_MARKERS = ('config.json', 'log.txt', 'samples', 'checkpoint')
# The flags shown as a run's key settings, in this order.
KEY_SETTINGS = ('input_height', 'output_height', 'output_width', 'crop', 'batch_size', 'epoch', 'train_steps',
                'learning_rate', 'beta1', 'z_dim', 'z_dist', 'g_steps', 'seed')
MAX_GALLERY = 64  # generated images listed per run (a --generate 10000 folder is counted, not listed in full)
MAX_LOSS_POINTS = 5000  # loss points sent per request; longer series are thinned evenly, the last point kept
LOG_TAIL_BYTES = 16384
MAX_JSON_BYTES = 1024 * 1024  # config.json larger than this is reported, not read
MAX_READ_BYTES = 8 * 1024 * 1024  # the most read from a file at once (metrics.jsonl: its last 8 MB)
MAX_JSON_DEPTH = 64  # deeper JSON (lists in lists ...) is reported as broken, not walked
RESCAN_SECONDS = 2  # a folder modified this recently is listed again (modification times are coarse)
TEMP_SUFFIX = '.tmp.gif'  # utils.save_gif's file before its rename (save_image's '.png.tmp' is no image name)


# ---------------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------------

def append_point(points, point):
    """Appends a step point to a list kept in increasing step order.

    A step at or below the last one means the log restarted (a resumed or re-run training appends to
    the same log.txt): the later lines win, so the points they supersede are dropped first.
    """
    while points and points[-1]['step'] >= point['step']:
        points.pop()
    points.append(point)


def split_complete_lines(data):
    """Splits bytes into (complete lines as text, number of bytes consumed); a trailing partial line is left.

    A line still being written (no newline yet) could end mid-number, so it is not parsed until complete.
    Carriage returns (progress bars) also end a line.
    """
    end = max(data.rfind(b'\n'), data.rfind(b'\r'))
    if end < 0:
        return [], 0
    text = data[:end + 1].decode('utf-8', errors='replace')
    return [line for line in re.split(r'[\r\n]', text) if line], end + 1


def finite_or_none(value):
    """A float if finite, else None (JSON has no NaN; the chart leaves a gap there)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def loss_text(value):
    """A loss as JSON-safe value: the number if finite, else the string 'nan', 'inf' or '-inf'."""
    if value is None:
        return None
    if math.isnan(value):
        return 'nan'
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    return value


def json_safe(obj):
    """Returns obj with every non-finite float replaced by its text ('nan', 'inf', '-inf') for valid JSON."""
    if isinstance(obj, float):
        return loss_text(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def thin(points, max_points):
    """Returns at most max_points of points, evenly spaced, always keeping the first and the last."""
    if max_points <= 0 or len(points) <= max_points:
        return list(points)
    stride = int(math.ceil(len(points) / float(max_points)))
    kept = points[::stride]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def loss_series(points, since=None, max_points=MAX_LOSS_POINTS):
    """Builds the loss JSON from step points: parallel arrays (steps, d_loss, g_loss, time) after `since`.

    Non-finite losses become null (a gap in the chart) and are counted in `nonfinite`. `reset` is true
    when `since` lies beyond the last step, i.e. the log restarted and the page should drop its points.
    """
    last_step = points[-1]['step'] if points else None
    reset = since is not None and (last_step is None or since > last_step)
    selected = points if (since is None or reset) else [p for p in points if p['step'] > since]
    nonfinite = sum(1 for p in selected if finite_or_none(p['d_loss']) is None or finite_or_none(p['g_loss']) is None)
    selected = thin(selected, max_points)
    return {
        'steps': [p['step'] for p in selected],
        'd_loss': [finite_or_none(p['d_loss']) for p in selected],
        'g_loss': [finite_or_none(p['g_loss']) for p in selected],
        'time': [finite_or_none(p['time']) for p in selected],
        'last_step': last_step,
        'total_points': len(points),
        'nonfinite': nonfinite,
        'reset': reset,
    }


def parse_metrics_text(text):
    """Parses metrics.jsonl text into a list of dicts; blank, partial or invalid lines are skipped."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict) and not too_deep(row):
            rows.append(row)
    return rows


def metrics_summary(rows, keep=50):
    """Summarises metric rows: latest value of every key, the column names, the last `keep` rows, the count."""
    latest = {}
    columns = []
    for row in rows:
        for key, value in row.items():
            if key not in columns:
                columns.append(key)
            latest[key] = value
    if 'step' in columns:
        columns.remove('step')
        columns.insert(0, 'step')
    return json_safe({'latest': latest, 'columns': columns, 'rows': rows[-keep:], 'count': len(rows)})


def is_inside(path, folder):
    """True if the real path of `path` is `folder`'s real path or lies under it (symlinks resolved)."""
    real_path = os.path.realpath(path)
    real_folder = os.path.realpath(folder)
    return real_path == real_folder or real_path.startswith(real_folder.rstrip(os.sep) + os.sep)


class Refused(Exception):
    """A file the app will not read: missing, outside its folder, or not a regular file."""


def open_inside(path, folder):
    """Opens path for reading in binary mode; the one gate of every file the app reads. Refused (with the
    reason) unless it exists, its real path (symlinks resolved) lies inside folder, and it is a regular
    file: a FIFO or device is never read, so no request can block on one."""
    name = os.path.basename(path)
    if not os.path.lexists(path):
        raise Refused('no %s yet' % name)
    if not is_inside(path, folder):
        raise Refused('%s points outside its run folder' % name)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_NOCTTY', 0))
    except OSError as e:
        raise Refused('cannot read %s: %s' % (name, e.strerror))
    opened = '/proc/self/fd/%d' % fd  # what was opened, should the path have changed since the check
    problem = None
    if not stat_mode.S_ISREG(os.fstat(fd).st_mode):
        problem = '%s is not a regular file' % name
    elif os.path.exists(opened) and not is_inside(opened, folder):
        problem = '%s points outside its run folder' % name
    if problem:
        os.close(fd)
        raise Refused(problem)
    return os.fdopen(fd, 'rb')


def read_inside(path, folder, max_bytes, offset=0, tail=False):
    """Reads at most max_bytes of a file open_inside allows, from offset or (tail) its last bytes;
    returns (bytes, file size)."""
    with open_inside(path, folder) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - max_bytes) if tail else offset)
        return f.read(max_bytes), size


def too_deep(obj, limit=MAX_JSON_DEPTH):
    """True when lists and objects nest deeper than limit (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def age_text(seconds):
    """Formats an age in seconds as a short text ('12 s', '5 min', '3 h', '2 d')."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return '%d s' % seconds
    if seconds < 7200:
        return '%d min' % (seconds // 60)
    if seconds < 172800:
        return '%d h' % (seconds // 3600)
    return '%d d' % (seconds // 86400)


def run_name_ok(name):
    """True for a name the app lists as a run: a plain folder name, not hidden, no separators."""
    return bool(name) and not name.startswith('.') and '/' not in name and '\\' not in name and '\0' not in name


# ---------------------------------------------------------------------------------------------------------
# Reading run folders
# ---------------------------------------------------------------------------------------------------------

class LogCache(object):
    """Parses log.txt files incrementally: each request reads only the bytes appended since the last one."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}

    def points(self, path, folder=None):
        """Returns the step points of the log at path (a copy), or [] if it does not exist or cannot be read
        (see open_inside; folder defaults to the log's own folder)."""
        folder = folder or os.path.dirname(path)
        try:
            stat = os.stat(path)
        except OSError:
            return []
        with self._lock:
            entry = self._entries.get(path)
            if entry is None or entry['ino'] != stat.st_ino or stat.st_size < entry['offset']:
                entry = {'ino': stat.st_ino, 'offset': 0, 'points': []}
                self._entries[path] = entry
            while stat.st_size > entry['offset']:  # in pieces of at most MAX_READ_BYTES
                try:
                    data, _ = read_inside(path, folder, min(stat.st_size - entry['offset'], MAX_READ_BYTES),
                                          offset=entry['offset'])
                except (OSError, Refused):
                    break
                lines, used = split_complete_lines(data)
                for line in lines:
                    point = steplog.parse_line(line)
                    if point is not None:
                        append_point(entry['points'], point)
                entry['offset'] += used
                if used == 0:  # no complete line yet, or one longer than a piece: skip that piece
                    if len(data) < MAX_READ_BYTES:
                        break
                    entry['offset'] += len(data)
            return list(entry['points'])


def read_json_file(path, folder=None):
    """Reads a JSON object from path (see open_inside; folder defaults to the file's own folder); returns
    (object or None, problem text or None)."""
    name = os.path.basename(path)
    try:
        data, size = read_inside(path, folder or os.path.dirname(path), MAX_JSON_BYTES + 1)
    except Refused as e:
        return None, str(e)
    except OSError as e:
        return None, 'cannot read %s: %s' % (name, e.strerror)
    if size > MAX_JSON_BYTES:
        return None, '%s is larger than %d bytes' % (name, MAX_JSON_BYTES)
    try:
        obj = json.loads(data.decode('utf-8', errors='replace'))
    except ValueError:
        return None, '%s is not valid JSON' % name
    except RecursionError:
        return None, '%s nests lists or objects more than %d deep' % (name, MAX_JSON_DEPTH)
    if too_deep(obj):
        return None, '%s nests lists or objects more than %d deep' % (name, MAX_JSON_DEPTH)
    if not isinstance(obj, dict):
        return None, '%s does not hold a JSON object' % name
    return obj, None


def read_tail(path, max_bytes=LOG_TAIL_BYTES, max_lines=40, folder=None):
    """Returns the last lines of a text file (at most max_lines from its last max_bytes), or [] if unreadable
    (see open_inside; folder defaults to the file's own folder)."""
    try:
        data, size = read_inside(path, folder or os.path.dirname(path), max_bytes, tail=True)
    except (OSError, Refused):
        return []
    lines = re.split(r'[\r\n]', data.decode('utf-8', errors='replace'))
    if size > max_bytes:
        lines = lines[1:]  # the first one is probably cut
    return [line for line in lines if line.strip()][-max_lines:]


def read_metrics(run_dir):
    """Returns the rows of run_dir/metrics.jsonl (see parse_metrics_text; of its last MAX_READ_BYTES), or []
    if there is none or it cannot be read (see open_inside)."""
    try:
        data, size = read_inside(os.path.join(run_dir, 'metrics.jsonl'), run_dir, MAX_READ_BYTES, tail=True)
    except (OSError, Refused):
        return []
    if size > MAX_READ_BYTES:
        data = data[data.find(b'\n') + 1:]  # the first line is probably cut
    return parse_metrics_text(data.decode('utf-8', errors='replace'))


FileInfo = collections.namedtuple('FileInfo', ['st_size', 'st_mtime'])


def list_folder(folder, root):
    """Returns [(name, FileInfo)] of the regular files in folder (symlinks followed when they stay inside
    root; hidden names left out), or [] if it is missing."""
    entries = []
    try:
        listing = list(os.scandir(folder))
    except OSError:
        return entries
    for entry in listing:
        if entry.name.startswith('.'):
            continue
        try:
            if entry.is_symlink() and not is_inside(entry.path, root):
                continue
            stat = entry.stat()
        except OSError:
            continue
        if stat_mode.S_ISREG(stat.st_mode):
            entries.append((entry.name, FileInfo(stat.st_size, stat.st_mtime)))
    return entries


class FolderCache(object):
    """The images of a folder, listed again only when the folder changes (a --generate folder of 100,000
    images costs one stat a request, not 100,000); the writers replace images by rename, which changes it."""

    def __init__(self):
        self._entries = {}

    def listing(self, folder, root, extensions):
        """([(name, FileInfo)] of the images sorted by name, newest modification time of any file in folder
        or None)."""
        try:
            stat = os.stat(folder)
        except OSError:
            return [], None
        version = (stat.st_ino, stat.st_mtime)
        key = (folder, root, extensions)
        entry = self._entries.get(key)
        if entry is None or entry[0] != version or time.time() - stat.st_mtime < RESCAN_SECONDS:
            files = sorted(list_folder(folder, root))
            images = [(name, info) for name, info in files
                      if name.lower().endswith(extensions) and not name.endswith(TEMP_SUFFIX)]
            entry = self._entries[key] = (version, images, max([info.st_mtime for _, info in files], default=None))
        return list(entry[1]), entry[2]


class RunReader(object):
    """Reads the run folders under one out_dir; every file it names lies inside out_dir."""

    def __init__(self, out_dir, live_seconds=LIVE_SECONDS):
        self.out_dir = os.path.abspath(out_dir)
        self.live_seconds = live_seconds
        self.logs = LogCache()
        self.folders = FolderCache()

    # -- listing ------------------------------------------------------------------------------------------

    def scan(self):
        """Returns (status dict for out_dir, list of run names, list of ignored folder names)."""
        status = {'out_dir': self.out_dir, 'exists': os.path.exists(self.out_dir),
                  'is_dir': os.path.isdir(self.out_dir), 'problem': None}
        runs, ignored = [], []
        if not status['exists']:
            status['problem'] = 'The folder %s does not exist yet.' % self.out_dir
            return status, runs, ignored
        if not status['is_dir']:
            status['problem'] = '%s is not a folder.' % self.out_dir
            return status, runs, ignored
        try:
            names = sorted(os.listdir(self.out_dir))
        except OSError as e:
            status['problem'] = 'Cannot read %s: %s.' % (self.out_dir, e.strerror)
            return status, runs, ignored
        for name in names:
            path = os.path.join(self.out_dir, name)
            if not run_name_ok(name) or not os.path.isdir(path):
                continue
            if not is_inside(path, self.out_dir) or os.path.realpath(path) == os.path.realpath(self.out_dir):
                ignored.append(name)  # a symlink pointing out of out_dir is never followed
                continue
            if any(os.path.exists(os.path.join(path, marker)) for marker in RUN_MARKERS):
                runs.append(name)
            else:
                ignored.append(name)
        return status, runs, ignored

    def run_dir(self, name):
        """Returns the folder of a listed run, or None if `name` is not one of the runs scan() lists."""
        if not run_name_ok(name):
            return None
        _, runs, _ = self.scan()
        if name not in runs:
            return None
        return os.path.join(self.out_dir, name)

    def images_in(self, run_dir, sub, extensions):
        """Lists the image files of run_dir/sub: [(name, FileInfo)] sorted by name."""
        folder = os.path.join(run_dir, sub)
        if not is_inside(folder, run_dir):
            return []
        return self.folders.listing(folder, run_dir, extensions)[0]

    # -- one run ------------------------------------------------------------------------------------------

    @staticmethod
    def read_files(run_dir):
        """(config or None, the problem reading it or None, metric rows) of a run."""
        config, config_problem = read_json_file(os.path.join(run_dir, 'config.json'), run_dir)
        return config, config_problem, read_metrics(run_dir)

    def summary(self, name, run_dir, files=None):
        """Summarises one run: config highlights, progress from the log, last losses, liveness; files is
        read_files' answer when the caller has it already."""
        now = time.time()
        config, config_problem, metrics_rows = files or self.read_files(run_dir)
        points = self.logs.points(os.path.join(run_dir, 'log.txt'), run_dir)
        last = points[-1] if points else None
        samples = self.images_in(run_dir, 'samples', ('.png',))
        sample_steps = sorted(int(SAMPLE_NAME.match(n).group(1)) for n, _ in samples if SAMPLE_NAME.match(n))

        # Liveness: the newest modification among the files a training run keeps writing.
        mtimes = []
        for rel in ('log.txt', 'metrics.jsonl', 'config.json', os.path.join('checkpoint', 'checkpoint')):
            try:
                if is_inside(os.path.join(run_dir, rel), run_dir):
                    mtimes.append(os.stat(os.path.join(run_dir, rel)).st_mtime)
            except OSError:
                pass
        if is_inside(os.path.join(run_dir, 'samples'), run_dir):
            newest_sample = self.folders.listing(os.path.join(run_dir, 'samples'), run_dir, ('.png',))[1]
            mtimes.extend([newest_sample] if newest_sample is not None else [])
        last_modified = max(mtimes) if mtimes else None
        live = last_modified is not None and now - last_modified <= self.live_seconds

        config = config or {}
        settings = [(key, config[key]) for key in KEY_SETTINGS if key in config]
        try:
            has_checkpoint = any(n.endswith('.index') for n in os.listdir(os.path.join(run_dir, 'checkpoint')))
        except OSError:
            has_checkpoint = False
        return json_safe({
            'name': name,
            'dataset': config.get('dataset'),
            'settings': [{'key': k, 'value': v} for k, v in settings],
            'device': config.get('device'),
            'precision': config.get('precision'),
            'precision_mode': config.get('precision_mode'),
            'tf_version': config.get('tf_version'),
            'config_problem': config_problem,
            'has_log': os.path.exists(os.path.join(run_dir, 'log.txt')),
            'last_step': last['step'] if last else None,
            'epoch': last['epoch'] if last else None,
            'epochs': last['epochs'] if last else config.get('epoch'),
            'batch': last['batch'] if last else None,
            'batches': last['batches'] if last else None,
            'elapsed': last['time'] if last else None,
            'd_loss': last['d_loss'] if last else None,
            'g_loss': last['g_loss'] if last else None,
            'train_steps': config.get('train_steps'),
            'n_samples': len(sample_steps),
            'last_sample_step': sample_steps[-1] if sample_steps else None,
            'has_checkpoint': has_checkpoint,
            'metrics_latest': metrics_summary(metrics_rows)['latest'] if metrics_rows else {},
            'last_modified': last_modified,
            'age': now - last_modified if last_modified is not None else None,
            'age_text': age_text(now - last_modified) if last_modified is not None else None,
            'live': live,
        })

    def detail(self, name, run_dir):
        """Everything the run view shows: summary, config, images by kind, metrics and the log's tail."""
        files = self.read_files(run_dir)
        info = self.summary(name, run_dir, files)
        config, config_problem, metrics_rows = files
        samples = self.images_in(run_dir, 'samples', ('.png',))
        timeline, others, reals = [], [], None
        for file_name, stat in samples:
            match = SAMPLE_NAME.match(file_name)
            if match:
                timeline.append({'step': int(match.group(1)), 'file': 'samples/' + file_name, 'mtime': stat.st_mtime})
            elif file_name == 'reals.png':
                reals = {'file': 'samples/reals.png', 'mtime': stat.st_mtime}
            else:
                others.append('samples/' + file_name)
        timeline.sort(key=lambda item: item['step'])
        generated = self.images_in(run_dir, 'generated', ('.png',))
        visualize = self.images_in(run_dir, 'visualize', ('.png', '.gif'))
        info.update(json_safe({
            'config': config,
            'config_problem': config_problem,
            'timeline': timeline,
            'reals': reals,
            'generated': ['generated/' + n for n, _ in generated[:MAX_GALLERY]],
            'generated_count': len(generated),
            'visualize': ['visualize/' + n for n, _ in visualize] + others,
            'metrics': metrics_summary(metrics_rows),
            'log_tail': read_tail(os.path.join(run_dir, 'log.txt'), folder=run_dir),
            'files': [f for f in SERVED_TOP_FILES if os.path.isfile(os.path.join(run_dir, f))
                      and is_inside(os.path.join(run_dir, f), run_dir)],
        }))
        return info

    def broken(self, name, run_dir, error):
        """What the page shows of a run that could not be read (the others are listed as usual)."""
        try:
            last_modified = os.stat(run_dir).st_mtime
        except OSError:
            last_modified = None
        return {'name': name, 'settings': [], 'config_problem': 'cannot read this run (%s)' % (
                    type(error).__name__ if isinstance(error, RecursionError) else error),
                'has_log': False, 'n_samples': 0, 'has_checkpoint': False, 'metrics_latest': {},
                'last_modified': last_modified, 'live': False, 'broken': True}

    def resolve_file(self, name, rel):
        """Returns the path of a file the app may serve for run `name` at relative path `rel`, else None.

        Only names the app lists itself: a listed run, then either a top-level file of SERVED_TOP_FILES
        or '<sub>/<file>' with <sub> in SERVED_DIRS, the right extension, and <file> among the names
        listed in that folder. The real path (symlinks resolved) must stay inside the run and out_dir.
        """
        run_dir = self.run_dir(name)
        if run_dir is None or not rel or '\\' in rel or '\0' in rel or rel.startswith('/'):
            return None
        parts = rel.split('/')
        if len(parts) == 1 and parts[0] in SERVED_TOP_FILES:
            folder, file_name = run_dir, parts[0]
        elif len(parts) == 2 and parts[0] in SERVED_DIRS and parts[1].lower().endswith(SERVED_DIRS[parts[0]]):
            folder, file_name = os.path.join(run_dir, parts[0]), parts[1]
        else:
            return None
        try:
            listed = os.listdir(folder)
        except OSError:
            return None
        if file_name.startswith('.') or file_name not in listed:
            return None
        path = os.path.join(folder, file_name)
        if not is_inside(path, run_dir) or not is_inside(path, self.out_dir) or not os.path.isfile(path):
            return None
        return path


# ---------------------------------------------------------------------------------------------------------
# The web app
# ---------------------------------------------------------------------------------------------------------

LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1', '[::1]')


class ExactPathMap(Map):
    """A URL map that never merges repeated slashes: '/files/run//etc/passwd' is a 404, not a redirect."""

    def __init__(self, *args, **kwargs):
        kwargs['merge_slashes'] = False
        super(ExactPathMap, self).__init__(*args, **kwargs)


class RunsFlask(Flask):
    url_map_class = ExactPathMap


def request_host_name(host):
    """The host name of a Host header, without the port ('[::1]:5000' -> '[::1]', 'a:80' -> 'a')."""
    host = (host or '').strip().lower()
    if host.startswith('['):
        return host.split(']')[0] + ']'
    return host.rsplit(':', 1)[0] if ':' in host else host


def create_app(out_dir, loopback_only=True, live_seconds=LIVE_SECONDS):
    """Builds the Flask app over out_dir. With loopback_only, requests must name a loopback Host
    (so a web page elsewhere cannot read the runs through DNS rebinding)."""
    app = RunsFlask(__name__, template_folder=os.path.join(HERE, 'templates'),
                    static_folder=os.path.join(HERE, 'static'))
    app.config['SEND_FILE_MAX_AGE_DEFAULT'] = 0
    reader = RunReader(out_dir, live_seconds=live_seconds)
    app.config['RUN_READER'] = reader

    @app.before_request
    def check_host():
        if loopback_only and request_host_name(request.host) not in LOOPBACK_HOSTS:
            return ('This page answers only to http://127.0.0.1 or http://localhost addresses, since it listens '
                    'on the loopback interface. Open it through one of those, or start web/app.py with '
                    '--host 0.0.0.0 to serve other names.\n', 403, {'Content-Type': 'text/plain; charset=utf-8'})

    @app.after_request
    def add_headers(response):
        response.headers['X-Content-Type-Options'] = 'nosniff'
        response.headers['X-Frame-Options'] = 'DENY'
        response.headers['Referrer-Policy'] = 'no-referrer'
        response.headers['Content-Security-Policy'] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        if request.path.startswith('/api/'):
            response.headers['Cache-Control'] = 'no-store'
        return response

    @app.errorhandler(404)
    def not_found(error):
        if request.path.startswith('/api/'):
            return jsonify({'error': 'not found'}), 404
        return 'Not found', 404, {'Content-Type': 'text/plain; charset=utf-8'}

    @app.route('/')
    def index():
        return render_template('index.html', out_dir=reader.out_dir)

    @app.route('/api/runs')
    def api_runs():
        status, names, ignored = reader.scan()
        runs = []
        for name in names:
            run_dir = os.path.join(reader.out_dir, name)
            try:
                runs.append(reader.summary(name, run_dir))
            except Exception as error:  # one unreadable run must not hide the others
                runs.append(reader.broken(name, run_dir, error))
        runs.sort(key=lambda run: -(run['last_modified'] or 0))
        status.update({'runs': runs, 'ignored': ignored, 'live_seconds': reader.live_seconds,
                       'server_time': time.time()})
        return jsonify(status)

    @app.route('/api/runs/<name>')
    def api_run(name):
        run_dir = reader.run_dir(name)
        if run_dir is None:
            abort(404)
        try:
            return jsonify(reader.detail(name, run_dir))
        except Exception as error:  # shown as a broken run, not a server error
            return jsonify(reader.broken(name, run_dir, error))

    @app.route('/api/runs/<name>/losses')
    def api_losses(name):
        run_dir = reader.run_dir(name)
        if run_dir is None:
            abort(404)
        since = request.args.get('since', type=int)
        max_points = request.args.get('max_points', default=MAX_LOSS_POINTS, type=int)
        points = reader.logs.points(os.path.join(run_dir, 'log.txt'))
        series = loss_series(points, since=since, max_points=max(1, min(max_points, MAX_LOSS_POINTS)))
        series['run'] = name
        return jsonify(series)

    @app.route('/files/<name>/<path:rel>')
    def run_file(name, rel):
        path = reader.resolve_file(name, rel)
        if path is None:
            abort(404)
        mimetype = 'text/plain; charset=utf-8' if rel.endswith(('.txt', '.json', '.jsonl')) else None
        return send_file(path, mimetype=mimetype, conditional=True, max_age=0)

    return app


def parse_args(argv=None):
    """Parses the command line: --out_dir, --host, --port."""
    parser = argparse.ArgumentParser(
        description='Serves a read-only page to watch and compare the DCGAN runs under --out_dir.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
               '  python web/app.py                            # the runs in ./out at http://127.0.0.1:5000/\n'
               '  python web/app.py --out_dir ./out --port 8080\n'
               '  python web/app.py --host 0.0.0.0             # reachable from other machines (read-only)')
    parser.add_argument('--out_dir', default='./out',
                        help='folder holding the run folders (main.py\'s --out_dir); need not exist yet '
                             '(default ./out)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='interface to bind; 0.0.0.0 makes the page reachable from the network (default 127.0.0.1)')
    parser.add_argument('--port', type=int, default=5000, help='port to listen on; 0 picks a free one (default 5000)')
    parser.add_argument('--verbose', action='store_true', help='log every request (the page polls every few seconds)')
    return parser.parse_args(argv)


def main(argv=None):
    """Starts Werkzeug's threaded server (never in debug mode) and prints the URL."""
    import logging
    from werkzeug.serving import make_server

    args = parse_args(argv)
    logging.getLogger('werkzeug').setLevel(logging.INFO if args.verbose else logging.WARNING)
    loopback = args.host in LOOPBACK_HOSTS
    app = create_app(args.out_dir, loopback_only=loopback)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as e:
        sys.exit('Cannot listen on %s:%d (%s); pick another --port or --host.' % (args.host, args.port, e.strerror))
    out_dir = app.config['RUN_READER'].out_dir
    shown_host = args.host
    if args.host in ('0.0.0.0', '::', ''):
        shown_host = '127.0.0.1'  # all interfaces: this machine's own address works here, its name elsewhere
    elif ':' in args.host:
        shown_host = '[%s]' % args.host
    if not os.path.isdir(out_dir):
        print('Note: %s does not exist yet; the page will show runs once training writes there.' % out_dir)
    if not loopback:
        print('Warning: listening on %s, so anyone who can reach this machine on port %d can browse these '
              'runs (read-only).' % (args.host or 'all interfaces', server.server_port))
    print('Serving the runs in %s at http://%s:%d/  (Ctrl+C to stop)' % (out_dir, shown_host, server.server_port))
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
