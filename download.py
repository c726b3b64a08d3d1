"""Fetches the data sets main.py trains on (MNIST, celebA) into data_dir and verifies them by digest."""
import argparse
import errno
import gzip
import hashlib
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib

from tqdm import tqdm

REPO = os.path.dirname(os.path.abspath(__file__))

# The four raw (decompressed) MNIST files main.py reads (http://yann.lecun.com/exdb/mnist/) and their SHA-256 digests.
# The raw bytes are checked, not the .gz, because mirrors recompress the archives.
MNIST_SHA256 = {
    'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}
# Raw sizes, used only to check the free disk space before downloading.
MNIST_RAW_BYTES = {
    'train-images-idx3-ubyte': 47040016,
    'train-labels-idx1-ubyte': 60008,
    't10k-images-idx3-ubyte': 7840016,
    't10k-labels-idx1-ubyte': 10008,
}
# Tried in order after the user's own mirrors; they hold `<name>.gz`. The original host comes last
# because it is often down or refuses scripted downloads.
MNIST_MIRRORS = [
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
]
CELEBA = {
    'drive_id': '0B7EVK8r0v71pZjFTYXZWM3FlRnM',
    'md5': '00d2c5bc6d35e252742224ab0c1e8fcb',
    'images': 202599,
    'zip_name': 'img_align_celeba.zip',
    'zip_top_folder': 'img_align_celeba/',
    # About 1.4 GB; only used to check the free disk space before Drive starts sending.
    'zip_bytes_approx': 1443490838,
    'homepage': 'https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html',
}
# The frozen Inception graph of the FID papers (TTUR code), for `main.py --evaluate` on RGB data. No
# digest of it has been published: the archive must be gzip, and the graph must hold the FID's input and
# output nodes; its SHA-256 is printed so a user can compare it with a trusted copy.
INCEPTION = {
    'url': 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz',
    'archive': 'inception-2015-12-05.tgz',
    'folder': 'inception-2015-12-05',  # under data_dir; main.py looks for the graph there by default
    'graph_file': 'classify_image_graph_def.pb',
    'required_nodes': ['ExpandDims', 'pool_3'],
    'archive_bytes_approx': 88931400,  # only for the free-space check
}
# Marks a finished celebA extraction (JSON with the image count): a folder without it is unfinished.
CELEBA_MARKER = '.download_complete'

MIRROR_ENV = 'DCGAN_DATA_MIRROR'
# Names a JSON file that replaces the tables above (keys: see SETTINGS_KEYS). Tests use it to point
# the script at tiny stand-ins served on 127.0.0.1; users have no reason to set it.
SETTINGS_ENV = 'DCGAN_DOWNLOAD_SETTINGS'

RETRIES = 4
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 1 << 16
USER_AGENT = 'DCGAN-download/1.0 (+python urllib)'

SETTINGS_KEYS = {
    'mnist_sha256': 'MNIST_SHA256',
    'mnist_raw_bytes': 'MNIST_RAW_BYTES',
    'mnist_mirrors': 'MNIST_MIRRORS',
    'celeba': 'CELEBA',
    'inception': 'INCEPTION',
    'retries': 'RETRIES',
    'backoff_seconds': 'BACKOFF_SECONDS',
    'timeout_seconds': 'TIMEOUT_SECONDS',
}
DATASET_NAMES = {'mnist': 'mnist', 'celeba': 'celebA', 'inception': 'inception'}

EPILOG = """examples:
  python download.py mnist                       # fills ./data/mnist
  python download.py mnist celebA --data_dir /datasets --prepare
  python download.py inception                   # the Inception graph FID uses (main.py --evaluate)
  python download.py mnist --mirror http://fileserver.local/mnist/
  python download.py mnist --mirror file:///mnt/share/mnist/
  DCGAN_DATA_MIRROR="http://proxy.corp/mnist/" python download.py mnist

Any other image set: put the images in DATA_DIR/NAME/ and train with --dataset NAME.
"""


# ----------------------------------------------------------------------------------------------------
# Errors: each message is one sentence the user can act on; main() prints it and exits with status 1.

class DownloadError(Exception):
    """A failure the user can act on; str() is one sentence.

    Errors about one source also carry its url and a brief reason, for the summary that lists every
    source tried.
    """

    def __init__(self, message, url=None, brief=None):
        super().__init__(message)
        self.url = url
        self.brief = brief or message


class Unreachable(DownloadError):
    """The source could not be contacted at all (no network, refused, unknown host)."""


class TransferError(DownloadError):
    """The connection broke or timed out mid-transfer; retried, resuming from the bytes already kept."""


class HttpStatusError(DownloadError):
    """The server answered with an HTTP error status."""

    def __init__(self, url, code, reason):
        brief = ('HTTP %d %s' % (code, reason)).strip()
        super().__init__('%s answered %s' % (url, brief), url, brief)
        self.code = code

    @property
    def transient(self):
        return self.code >= 500 or self.code in (408, 429)


class MissingFile(DownloadError):
    """A local (file://) mirror does not hold the file."""


class HtmlInsteadOfData(DownloadError):
    """A web page (error, login or quota page) came where a data file was expected."""


class DigestMismatch(DownloadError):
    """The bytes do not have the published digest."""


class NotEnoughSpace(DownloadError):
    """The disk cannot hold what is about to be written."""


class UnsafeArchive(DownloadError):
    """An archive member would be written outside the target folder."""


# ----------------------------------------------------------------------------------------------------
# Small pure helpers.

def parse_mirrors(text):
    """Splits a mirror list written with spaces and/or commas; returns the URLs in order."""
    return [part for part in text.replace(',', ' ').split() if part]


def mirror_url(base, name):
    """Returns the URL of file `name` in the mirror folder `base` (a URL, or a local folder path)."""
    if '://' not in base:
        base = pathlib.Path(os.path.abspath(os.path.expanduser(base))).as_uri()
    if not base.endswith('/'):
        base += '/'
    return base + urllib.parse.quote(name)


def candidate_urls(name, user_mirrors, default_mirrors):
    """Lists the URLs to try for MNIST file `name`, best first.

    A user mirror may hold the file gzip-compressed or raw (a local folder often holds what main.py
    reads), so both are tried there; the public mirrors only hold `<name>.gz`.
    """
    urls = []
    for base in user_mirrors:
        urls += [mirror_url(base, name + '.gz'), mirror_url(base, name)]
    urls += [mirror_url(base, name + '.gz') for base in default_mirrors]
    return urls


def sniff(head):
    """Names the format of a file from its first bytes: 'gzip', 'zip', 'idx', 'html' or 'unknown'."""
    if head[:2] == b'\x1f\x8b':
        return 'gzip'
    if head[:4] in (b'PK\x03\x04', b'PK\x05\x06'):
        return 'zip'
    if head[:3] == b'\x00\x00\x08':  # idx magic: two zero bytes, then type 0x08 (unsigned byte)
        return 'idx'
    text = head[:1024].lstrip(b'\xef\xbb\xbf \t\r\n').lower()
    if text.startswith(b'<!doctype html') or text.startswith(b'<html') or b'<html' in text[:512]:
        return 'html'
    return 'unknown'


def backoff_delays(retries, base_seconds):
    """Seconds to wait before each retry: base, 2 base, 4 base, ..."""
    return [base_seconds * 2 ** attempt for attempt in range(retries)]


def parse_content_range(header):
    """Parses `bytes START-END/TOTAL`; returns (start, total), total None when the server wrote '*'."""
    try:
        unit, _, spec = header.strip().partition(' ')
        span, _, total = spec.partition('/')
        start = int(span.split('-')[0])
        if unit != 'bytes':
            raise ValueError(unit)
        return start, (None if total.strip() == '*' else int(total))
    except (AttributeError, ValueError):
        raise TransferError('the server sent an unreadable Content-Range header %r' % (header,))


def member_destination(root, member_name, strip_prefix=''):
    """Returns where archive member `member_name` lands under folder root, None for a folder entry.

    strip_prefix (e.g. 'img_align_celeba/') is removed from the front of the name, so the images land
    directly in root. Raises UnsafeArchive for a member that would land outside root (absolute paths,
    drive letters, '..' components): the "zip slip" attack.
    """
    name = member_name.replace('\\', '/')
    if strip_prefix and name.startswith(strip_prefix):
        name = name[len(strip_prefix):]
    if not name or name.endswith('/'):
        return None
    parts = name.split('/')
    if name.startswith('/') or ':' in parts[0] or '..' in parts:
        raise UnsafeArchive('the archive entry %r would be written outside %s, so the archive was '
                            'refused' % (member_name, root))
    root_path = os.path.realpath(root)
    destination = os.path.realpath(os.path.join(root_path, *parts))
    if os.path.commonpath([root_path, destination]) != root_path:
        raise UnsafeArchive('the archive entry %r would be written outside %s, so the archive was '
                            'refused' % (member_name, root))
    return destination


def prepare_command(dataset, data_dir):
    """The main.py command that runs the one-time preparation for the default settings of dataset."""
    command = [sys.executable, os.path.join(REPO, 'main.py'), '--dataset', dataset]
    if dataset == 'mnist':
        command += ['--input_height=28', '--output_height=28']
    else:
        command += ['--input_height=108', '--crop']
    return command + ['--prepare', '--data_dir', data_dir]


def format_bytes(count):
    """Human-readable size: '47.0 MB'."""
    for unit in ('B', 'kB', 'MB', 'GB'):
        if abs(count) < 1000 or unit == 'GB':
            return ('%d %s' % (count, unit)) if unit == 'B' else ('%.1f %s' % (count, unit))
        count /= 1000.0


def one_line(text, limit=160):
    """text with its whitespace runs collapsed, cut to limit characters (for a third party's message)."""
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + '...'


def short_reason(error):
    """One line describing a socket/URL error without the exception class noise."""
    reason = getattr(error, 'reason', error)
    text = getattr(reason, 'strerror', None) or str(reason) or type(reason).__name__
    return text.splitlines()[0] if text else type(reason).__name__


# ----------------------------------------------------------------------------------------------------
# Files on disk.

def file_digest(path, algorithm, label=None, quiet=True):
    """Hex digest of a file's bytes; shows a byte progress bar labelled `label` unless quiet."""
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as source, tqdm(total=os.path.getsize(path), unit='B', unit_scale=True,
                                          desc=label, disable=quiet or label is None,
                                          file=sys.stderr) as bar:
        for block in iter(lambda: source.read(CHUNK_BYTES * 16), b''):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def read_head(path, count=1024):
    with open(path, 'rb') as source:
        return source.read(count)


def ensure_free_space(folder, needed_bytes, what):
    """Raises NotEnoughSpace when folder's file system has less than needed_bytes free."""
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise NotEnoughSpace('not enough disk space in %s for %s: %s free, %s needed; free some space '
                             'or choose another --data_dir' % (folder, what, format_bytes(free),
                                                               format_bytes(needed_bytes)))


def write_failure(error, part_path, needed_bytes=None, resumes=True):
    """The DownloadError for an OSError while writing part_path; the bytes written so far stay there."""
    kept = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    if error.errno not in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)):
        return DownloadError('cannot write %s (%s)' % (part_path, short_reason(error)))
    try:
        free = format_bytes(shutil.disk_usage(os.path.dirname(os.path.abspath(part_path))).free)
    except OSError:
        free = 'no space'
    needed = ('%s more needed' % format_bytes(needed_bytes) if needed_bytes is not None
              else 'more needed')
    again = ('run the same command again to resume from the %s kept in it' % format_bytes(kept) if resumes
             else 'run the same command again')
    return NotEnoughSpace('the disk filled up while writing %s (%s free, %s): free some space or choose '
                          'another --data_dir, then %s' % (part_path, free, needed, again))


def remove_if_exists(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def warn(message):
    print(message, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# Fetching one URL into a `.part` file, resuming and retrying.

def fetch(url, part_path, label, quiet, extra_bytes=0):
    """Downloads url into part_path, resuming the bytes already there; returns how many it found there.

    Broken transfers and 5xx answers are retried with exponential backoff (RETRIES, BACKOFF_SECONDS),
    each retry resuming where the last stopped. extra_bytes is the room needed after the download
    (e.g. the decompressed copy) for the disk-space check.
    """
    if url.startswith('file:'):
        return fetch_local(url, part_path, label, quiet, extra_bytes)
    # Bytes kept from an earlier run may come from another mirror; the caller re-checks those.
    kept_before = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    delays = backoff_delays(RETRIES, BACKOFF_SECONDS)
    for attempt in range(RETRIES + 1):
        try:
            fetch_http_once(url, part_path, label, quiet, extra_bytes)
            return kept_before
        except (TransferError, HttpStatusError) as error:
            permanent = isinstance(error, HttpStatusError) and not error.transient
            if permanent or attempt == RETRIES:
                raise
            warn('%s; retrying in %.1f s' % (error, delays[attempt]))
            time.sleep(delays[attempt])


def fetch_local(url, part_path, label, quiet, extra_bytes):
    """Copies a file:// URL into part_path (a local copy is quick, so it always starts from byte 0)."""
    parsed = urllib.parse.urlparse(url)
    source_path = urllib.request.url2pathname(parsed.path)
    if not os.path.isfile(source_path):
        folder, name = os.path.split(source_path)
        raise MissingFile('%s holds no file %s' % (folder, name), url, 'no file %s' % name)
    size = os.path.getsize(source_path)
    ensure_free_space(os.path.dirname(part_path), size + extra_bytes, label)
    with open(source_path, 'rb') as source:
        block = source.read(CHUNK_BYTES)
        if sniff(block) == 'html':
            raise HtmlInsteadOfData('%s is a web page, not the data file' % url, url, 'a web page')
        written = 0
        try:
            with open(part_path, 'wb') as target, \
                    tqdm(total=size, unit='B', unit_scale=True, desc=label, disable=quiet,
                         file=sys.stderr) as bar:
                while block:
                    target.write(block)
                    written += len(block)
                    bar.update(len(block))
                    block = source.read(CHUNK_BYTES)
        except OSError as error:  # a local copy starts again from byte 0
            raise write_failure(error, part_path, size - written + extra_bytes, resumes=False) from None
    return 0


def fetch_http_once(url, part_path, label, quiet, extra_bytes):
    """One HTTP(S) attempt: asks for the bytes part_path lacks with Range.

    A server that ignores Range answers 200 with the whole file: the partial file is then restarted.
    """
    offset = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    headers = {'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity'}
    if offset:
        headers['Range'] = 'bytes=%d-' % offset
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            # Nothing left to send: the partial file is already whole (or longer); the digest decides.
            return
        raise HttpStatusError(url, error.code, error.reason)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = short_reason(error)
        raise Unreachable('cannot reach %s (%s)' % (url, reason), url, reason)

    with response:
        if 'text/html' in (response.headers.get('Content-Type') or '').lower():
            raise HtmlInsteadOfData('%s sent a web page (Content-Type text/html) instead of the data file'
                                    % url, url, 'a web page')
        if response.getcode() == 206:
            start, total = parse_content_range(response.headers.get('Content-Range'))
            if start != offset:
                remove_if_exists(part_path)
                raise TransferError('%s resumed at byte %d instead of %d' % (url, start, offset), url)
            mode = 'ab'
        else:
            offset, mode = 0, 'wb'
            length = response.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
        remaining = None if total is None else total - offset
        ensure_free_space(os.path.dirname(part_path) or '.', (remaining or 0) + extra_bytes, label)

        def next_block():
            try:
                # read1 returns what has arrived, so the bar moves and an interruption keeps it.
                return response.read1(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                brief = 'connection broke after %s (%s)' % (format_bytes(offset + received),
                                                            short_reason(error))
                raise TransferError('the %s to %s' % (brief, url), url, brief)

        received = 0
        block = next_block()
        # Checked before the partial file is touched, so a refused answer leaves it as it was.
        if offset == 0 and sniff(block) == 'html':
            raise HtmlInsteadOfData('%s sent a web page instead of the data file' % url, url, 'a web page')
        try:
            with open(part_path, mode) as target, \
                    tqdm(total=total, initial=offset, unit='B', unit_scale=True, desc=label, disable=quiet,
                         file=sys.stderr) as bar:
                while block:
                    target.write(block)
                    received += len(block)
                    bar.update(len(block))
                    block = next_block()
        except OSError as error:  # the disk, not the connection (next_block raises TransferError)
            needed = None if remaining is None else remaining - received + extra_bytes
            raise write_failure(error, part_path, needed) from None
    if remaining is not None and received < remaining:
        brief = 'connection closed after %s of %s' % (format_bytes(offset + received), format_bytes(total))
        raise TransferError('the %s from %s' % (brief, url), url, brief)


# ----------------------------------------------------------------------------------------------------
# MNIST.

def install_idx(part_path, target, expected_sha256, source):
    """Verifies a downloaded MNIST file (gzip or raw) by its raw SHA-256 and renames it into place.

    Raises DigestMismatch (and removes the bad bytes) when the digest differs; target is only
    created once the digest matches, so a half-written file never looks finished.
    """
    kind = sniff(read_head(part_path))
    if kind == 'html':
        os.remove(part_path)
        raise HtmlInsteadOfData('%s sent a web page instead of the data file' % source, source,
                                'a web page')
    unpacked = target + '.unpacked'
    if kind == 'gzip':
        digest = hashlib.sha256()
        try:
            with gzip.open(part_path, 'rb') as packed, open(unpacked, 'wb') as raw:
                for block in iter(lambda: packed.read(CHUNK_BYTES * 16), b''):
                    digest.update(block)
                    raw.write(block)
        except (OSError, EOFError, zlib.error) as error:
            remove_if_exists(unpacked)
            if getattr(error, 'errno', None) == errno.ENOSPC:
                raise NotEnoughSpace('the disk filled up while unpacking %s; free some space or choose '
                                     'another --data_dir' % os.path.basename(target))
            os.remove(part_path)
            raise DigestMismatch('%s is not a valid gzip file (%s)' % (source, short_reason(error)),
                                 source, 'not a valid gzip file')
        actual, verified = digest.hexdigest(), unpacked
    else:
        actual, verified = file_digest(part_path, 'sha256'), part_path
    if actual != expected_sha256:
        remove_if_exists(unpacked)
        os.remove(part_path)
        brief = 'SHA-256 %s... instead of %s...' % (actual[:12], expected_sha256[:12])
        raise DigestMismatch('%s from %s has %s' % (os.path.basename(target), source, brief), source,
                             brief)
    os.replace(verified, target)
    remove_if_exists(part_path)


def fetch_verified_idx(url, target, expected_sha256, quiet):
    """Downloads one MNIST file from url, verifies it and puts it at target."""
    part_path = target + ('.gz.part' if url.endswith('.gz') else '.part')
    label = os.path.basename(target)
    extra = MNIST_RAW_BYTES.get(label, 0) if url.endswith('.gz') else 0
    reused = fetch(url, part_path, label, quiet, extra)
    try:
        install_idx(part_path, target, expected_sha256, url)
    except DigestMismatch:
        if not reused:
            raise
        # The kept bytes may have come from another mirror that compressed the file differently:
        # spliced together they fail the check, so fetch the whole file again once.
        warn('%s: the resumed download failed its check; downloading it again from the start' % label)
        fetch(url, part_path, label, quiet, extra)
        install_idx(part_path, target, expected_sha256, url)


def source_label(url):
    """Short name of a source for messages: the host of a URL, the folder of a file:// URL."""
    parsed = urllib.parse.urlparse(url or '')
    if parsed.netloc:
        return parsed.netloc
    return os.path.dirname(urllib.request.url2pathname(parsed.path)) or (url or 'unknown source')


def failure_summary(name, failures):
    """One DownloadError saying why no source delivered `name`, from the per-source errors.

    The most telling failure picks the sentence: a digest mismatch, then a web page, then an HTTP
    error, else no source could be reached at all.
    """
    details = []
    for error in failures:
        detail = '%s: %s' % (source_label(error.url), error.brief)
        if detail not in details:
            details.append(detail)
    details = '; '.join(details)
    kinds = set(type(error) for error in failures)
    if DigestMismatch in kinds:
        return DigestMismatch('%s failed its digest check from every source that sent it (%s), so '
                              'nothing was kept; try again later or pass --mirror URL with a good copy'
                              % (name, details))
    if HtmlInsteadOfData in kinds:
        return HtmlInsteadOfData('got a web page instead of %s (%s), often a proxy login or error page; '
                                 'open that address in a browser or pass --mirror URL' % (name, details))
    if kinds & {HttpStatusError, TransferError, MissingFile}:
        return DownloadError('no mirror could deliver %s (%s); try again later or pass --mirror URL '
                             'with a copy of the file' % (name, details))
    if not failures:
        return DownloadError('no source is configured for %s; pass --mirror URL' % name)
    return Unreachable('no mirror could be reached for %s (%s); check the network connection or pass '
                       '--mirror URL with a local copy' % (name, details))


def fetch_mnist(data_dir, user_mirrors, quiet):
    """Makes data_dir/mnist hold the four verified idx files; returns the summary line."""
    folder = os.path.join(data_dir, 'mnist')
    os.makedirs(folder, exist_ok=True)
    downloaded = present = 0
    for name, expected in MNIST_SHA256.items():
        target = os.path.join(folder, name)
        if os.path.isfile(target):
            if file_digest(target, 'sha256') == expected:
                present += 1
                continue
            warn('%s does not match its SHA-256 digest; fetching it again' % target)
        sources = list(user_mirrors)
        if os.path.isfile(target + '.gz'):
            # A .gz already beside it (from an older downloader or a manual copy) saves a download.
            sources.insert(0, folder)
        failures = []
        for url in candidate_urls(name, sources, MNIST_MIRRORS):
            try:
                fetch_verified_idx(url, target, expected, quiet)
                break
            except (NotEnoughSpace, UnsafeArchive):
                raise
            except DownloadError as error:
                failures.append(error)
                warn('%s; trying the next source' % error)
        else:
            raise failure_summary(name, failures)
        downloaded += 1
    return 'mnist: %d files ok (%d downloaded, %d already present) in %s' % (
        downloaded + present, downloaded, present, folder)


# ----------------------------------------------------------------------------------------------------
# celebA.

def manual_celeba_steps(data_dir):
    return ('download %s by hand from https://drive.google.com/file/d/%s/view (or the "Align&Cropped Images" '
            'link on %s), put it at %s and run this command again to verify and extract it'
            % (CELEBA['zip_name'], CELEBA['drive_id'], CELEBA['homepage'],
               os.path.join(data_dir, CELEBA['zip_name'])))


def download_from_drive(drive_id, output, quiet):
    """Fetches a Google Drive file with gdown (which follows Drive's confirmation flow) to output.

    gdown resumes its own partial file when run again. Raises DownloadError when Drive refuses.
    """
    try:
        import gdown
    except ImportError:
        raise DownloadError('downloading celebA from Google Drive needs the gdown package; run '
                            '`pip install gdown` and try again')
    try:
        result = gdown.download(id=drive_id, output=output, quiet=quiet, resume=True)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # gdown and requests raise many types; each means "no file came"
        connection_error = type(error).__name__ in ('ConnectionError', 'Timeout', 'ConnectTimeout',
                                                    'ReadTimeout', 'SSLError', 'ProxyError')
        kind = Unreachable if connection_error else HtmlInsteadOfData
        reason = one_line(error) or type(error).__name__
        raise kind('Google Drive did not send the file (%s)' % reason, brief=reason)
    # Older gdown versions print the refusal and return None instead of raising.
    if result is None or not os.path.isfile(output):
        raise HtmlInsteadOfData('Google Drive did not send the file', brief='gdown got no file')
    if sniff(read_head(output)) == 'html':
        os.remove(output)
        raise HtmlInsteadOfData('Google Drive sent a web page instead of the file',
                                brief='it sent a web page instead of the archive')


def fetch_celeba_zip(data_dir, zip_path, user_mirrors, quiet):
    """Downloads img_align_celeba.zip from the user's mirrors, then Google Drive; verifies its MD5."""
    name = CELEBA['zip_name']
    part_path = zip_path + '.part'
    failures = []
    for base in user_mirrors:
        url = mirror_url(base, name)
        try:
            fetch(url, part_path, name, quiet, extra_bytes=CELEBA['zip_bytes_approx'])
            if sniff(read_head(part_path)) == 'html':
                os.remove(part_path)
                raise HtmlInsteadOfData('%s sent a web page instead of the archive' % url, url,
                                        'a web page')
            actual = file_digest(part_path, 'md5', 'verifying ' + name, quiet)
            if actual != CELEBA['md5']:
                os.remove(part_path)
                brief = 'MD5 %s instead of %s' % (actual, CELEBA['md5'])
                raise DigestMismatch('%s from %s has %s' % (name, url, brief), url, brief)
            os.replace(part_path, zip_path)
            return
        except NotEnoughSpace:
            raise
        except DownloadError as error:
            failures.append(error)
            warn('%s; trying the next source' % error)

    # Drive gets its own output name: gdown keeps its partial file beside it and resumes it.
    drive_output = zip_path + '.drive'
    if not os.path.exists(drive_output):
        ensure_free_space(data_dir, 2 * CELEBA['zip_bytes_approx'], name + ' and its extracted images')
    try:
        download_from_drive(CELEBA['drive_id'], drive_output, quiet)
        if sniff(read_head(drive_output)) == 'html':  # whatever the gdown version did, check the bytes
            os.remove(drive_output)
            raise HtmlInsteadOfData('Google Drive sent a web page instead of the archive',
                                    brief='it sent a web page instead of the archive')
    except HtmlInsteadOfData as error:
        raise HtmlInsteadOfData('Google Drive refused to send %s (%s; usually its daily download quota): %s'
                                % (name, error.brief, manual_celeba_steps(data_dir)))
    except Unreachable as error:
        raise Unreachable('cannot reach Google Drive for %s (%s): check the network connection, or %s'
                          % (name, error.brief, manual_celeba_steps(data_dir)))
    actual = file_digest(drive_output, 'md5', 'verifying ' + name, quiet)
    if actual != CELEBA['md5']:
        os.remove(drive_output)
        raise DigestMismatch('%s from Google Drive has MD5 %s, expected %s: %s'
                             % (name, actual, CELEBA['md5'], manual_celeba_steps(data_dir)))
    os.replace(drive_output, zip_path)


def count_jpegs(folder):
    """Number of .jpg files directly in folder (0 when it does not exist)."""
    if not os.path.isdir(folder):
        return 0
    return sum(1 for entry in os.scandir(folder)
               if entry.name.lower().endswith('.jpg') and entry.is_file())


def finished_extraction(target):
    """The image count of a finished celebA folder, or None when it is missing or unfinished.

    Finished means: the marker is there and the count still matches, or (a folder the user extracted
    by hand) it holds exactly the published number of JPEGs, in which case the marker is written now.
    """
    images = count_jpegs(target)
    try:
        with open(os.path.join(target, CELEBA_MARKER)) as marker:
            recorded = json.load(marker).get('images')
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None and recorded == images:
        return images
    if images and images == CELEBA['images']:
        write_marker(target, images)
        return images
    return None


def write_marker(folder, images):
    with open(os.path.join(folder, CELEBA_MARKER), 'w') as marker:
        json.dump({'images': images, 'zip_md5': CELEBA['md5']}, marker)


def extract_celeba(zip_path, target, quiet):
    """Extracts the JPEGs of zip_path flat into target; returns how many.

    Every member is checked before anything is written (zip slip), the images go to target.partial
    first and are renamed into place only once all are out, with the finish marker.
    """
    partial = target + '.partial'
    if os.path.isdir(partial):
        shutil.rmtree(partial)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DownloadError('%s is not a readable zip archive (%s); delete it and run this command again'
                            % (zip_path, short_reason(error)))
    with archive:
        members = []
        for info in archive.infolist():
            destination = member_destination(partial, info.filename, CELEBA['zip_top_folder'])
            if destination is not None:
                members.append((info, destination))
        ensure_free_space(os.path.dirname(os.path.abspath(target)),
                          sum(info.file_size for info, _ in members), 'the extracted images')
        os.makedirs(partial)
        for info, destination in tqdm(members, unit='file', desc='extracting ' + CELEBA['zip_name'],
                                      disable=quiet, file=sys.stderr):
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            with archive.open(info) as source, open(destination, 'wb') as written:
                shutil.copyfileobj(source, written, CHUNK_BYTES)
    images = count_jpegs(partial)
    if images != CELEBA['images']:
        shutil.rmtree(partial)
        raise DownloadError('%s holds %d JPEG images instead of %d; delete it and run this command again'
                            % (zip_path, images, CELEBA['images']))
    write_marker(partial, images)
    replace_folder(partial, target)
    return images


def replace_folder(new_folder, target):
    """Renames new_folder to target; what target held and new_folder lacks (a zip put there) is kept."""
    if os.path.isdir(target):
        for entry in os.listdir(target):
            if not os.path.lexists(os.path.join(new_folder, entry)):
                os.rename(os.path.join(target, entry), os.path.join(new_folder, entry))
        shutil.rmtree(target)
    os.rename(new_folder, target)


def fetch_celeba(data_dir, user_mirrors, quiet):
    """Makes data_dir/celebA hold the aligned celebA JPEGs; returns the summary line."""
    target = os.path.join(data_dir, 'celebA')
    images = finished_extraction(target)
    if images is not None:
        return 'celebA: %s images ok (already present) in %s' % ('{:,}'.format(images), target)

    placed = [path for path in (os.path.join(data_dir, CELEBA['zip_name']),
                                os.path.join(target, CELEBA['zip_name'])) if os.path.isfile(path)]
    if placed:
        zip_path = placed[0]
        actual = file_digest(zip_path, 'md5', 'verifying ' + CELEBA['zip_name'], quiet)
        if actual != CELEBA['md5']:
            raise DigestMismatch('%s has MD5 %s, expected %s, so it is incomplete or a different file; '
                                 'delete it and run this command again' % (zip_path, actual, CELEBA['md5']))
    else:
        zip_path = os.path.join(data_dir, CELEBA['zip_name'])
        fetch_celeba_zip(data_dir, zip_path, user_mirrors, quiet)
    if os.path.dirname(os.path.abspath(zip_path)) == os.path.abspath(target):
        # Extraction replaces target; keep the archive out of the way while it does.
        moved = os.path.join(data_dir, CELEBA['zip_name'])
        os.replace(zip_path, moved)
        zip_path = moved
    images = extract_celeba(zip_path, target, quiet)
    if placed:
        how = 'extracted from ' + zip_path
    else:
        # Our own download has served its purpose; a zip the user put there is theirs to delete.
        os.remove(zip_path)
        how = 'downloaded and extracted'
    return 'celebA: %s images ok (%s) in %s' % ('{:,}'.format(images), how, target)


def inception_graph_ok(path):
    """True when path holds a serialized graph naming the nodes FID reads (a cheap check without TF)."""
    with open(path, 'rb') as f:
        content = f.read()
    return all(node.encode() in content for node in INCEPTION['required_nodes'])


def fetch_inception(data_dir, user_mirrors, quiet):
    """Makes data_dir/inception-2015-12-05/classify_image_graph_def.pb exist; returns the summary line."""
    folder = os.path.join(data_dir, INCEPTION['folder'])
    target = os.path.join(folder, INCEPTION['graph_file'])
    if os.path.isfile(target) and inception_graph_ok(target):
        return 'inception: %s ok (already present)' % target
    archive = INCEPTION['archive']
    part_path = os.path.join(data_dir, archive + '.part')
    failures = []
    for url in [mirror_url(base, archive) for base in user_mirrors] + [INCEPTION['url']]:
        try:
            fetch(url, part_path, archive, quiet, extra_bytes=2 * INCEPTION['archive_bytes_approx'])
            if sniff(read_head(part_path)) != 'gzip':
                kind = sniff(read_head(part_path))
                os.remove(part_path)
                raise HtmlInsteadOfData('%s sent %s instead of a gzip archive' % (
                    url, 'a web page' if kind == 'html' else 'something else'), url, 'not a gzip archive')
            extract_inception_graph(part_path, target, url)
            os.remove(part_path)
            return 'inception: %s ok (downloaded; SHA-256 %s)' % (target, file_digest(target, 'sha256'))
        except NotEnoughSpace:
            raise
        except DownloadError as error:
            failures.append(error)
            warn('%s; trying the next source' % error)
    raise failure_summary(archive, failures)


def extract_inception_graph(archive_path, target, url):
    """Copies the graph file out of the downloaded .tgz to target (via a temporary name), checking it."""
    name = INCEPTION['graph_file']
    try:
        with tarfile.open(archive_path, 'r:gz') as archive:
            members = [m for m in archive.getmembers() if m.isfile() and os.path.basename(m.name) == name]
            if not members:
                raise DigestMismatch('%s from %s holds no %s' % (INCEPTION['archive'], url, name), url,
                                     'no ' + name + ' inside')
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = target + '.part'
            source = archive.extractfile(members[0])
            with open(tmp, 'wb') as out:
                shutil.copyfileobj(source, out)  # our own file name: no path from the archive is used
    except (tarfile.TarError, EOFError, OSError) as error:
        os.remove(archive_path)
        raise DigestMismatch('%s from %s is not a readable archive (%s)' % (INCEPTION['archive'], url,
                                                                           short_reason(error)),
                             url, 'unreadable archive')
    if not inception_graph_ok(tmp):
        os.remove(tmp)
        raise DigestMismatch('%s from %s is not the Inception graph FID needs (nodes %s missing)'
                             % (name, url, ', '.join(INCEPTION['required_nodes'])), url, 'wrong graph')
    os.replace(tmp, target)


# ----------------------------------------------------------------------------------------------------
# Command line.

def apply_settings_file(path):
    """Replaces the module's tables from a JSON file (see SETTINGS_ENV)."""
    with open(path) as settings_file:
        settings = json.load(settings_file)
    for key, value in settings.items():
        if key not in SETTINGS_KEYS:
            raise DownloadError('%s names an unknown setting %r; known: %s'
                                % (path, key, ', '.join(sorted(SETTINGS_KEYS))))
        if key == 'celeba':
            CELEBA.update(value)
        else:
            globals()[SETTINGS_KEYS[key]] = value


def run_prepare(datasets, data_dir):
    """Runs main.py's one-time preparation for each data set; raises DownloadError when it fails."""
    for dataset in datasets:
        command = prepare_command(dataset, data_dir)
        if not os.path.isfile(command[1]):
            raise DownloadError('--prepare needs %s, which is missing' % command[1])
        print('preparing %s: %s' % (dataset, ' '.join(command)), flush=True)
        status = subprocess.run(command).returncode
        if status != 0:
            raise DownloadError('the preparation of %s failed (main.py exited with status %d); see its '
                                'messages above' % (dataset, status))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Download and verify the data sets main.py trains on, into DATA_DIR/<dataset>.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('datasets', nargs='+', metavar='DATASET',
                        help='mnist, celebA, and/or inception (the graph for FID)')
    parser.add_argument('--data_dir', default='./data', help='root of the data sets (default ./data)')
    parser.add_argument('--mirror', action='append', default=[], metavar='URL',
                        help='a folder URL (http://, https://, file:// or a local path) tried before the '
                             'public sources; repeatable. %s adds more (spaces or commas between)'
                             % MIRROR_ENV)
    parser.add_argument('--prepare', action='store_true',
                        help="then run main.py's one-time preparation for the default settings")
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)

    datasets = []
    for requested in args.datasets:
        if requested.lower() == 'lsun':
            parser.exit(2, '%s: lsun is not supported; put any images in %s/NAME/ and train with '
                           '`python main.py --dataset NAME --train` instead\n'
                        % (parser.prog, args.data_dir.rstrip('/')))
        if requested.lower() not in DATASET_NAMES:
            parser.error('unknown data set %r: choose mnist, celebA or inception' % requested)
        if DATASET_NAMES[requested.lower()] not in datasets:
            datasets.append(DATASET_NAMES[requested.lower()])
    args.datasets = datasets
    return args


def main(argv=None):
    """Runs the command line; returns the exit status (0 ok, 1 failure, 130 interrupted)."""
    args = parse_args(argv)
    fetchers = {'mnist': fetch_mnist, 'celebA': fetch_celeba, 'inception': fetch_inception}
    try:
        if os.environ.get(SETTINGS_ENV):
            apply_settings_file(os.environ[SETTINGS_ENV])
        mirrors = args.mirror + parse_mirrors(os.environ.get(MIRROR_ENV, ''))
        try:
            os.makedirs(args.data_dir, exist_ok=True)
        except OSError as error:
            raise DownloadError('cannot create --data_dir %s (%s)' % (args.data_dir, short_reason(error)))
        for dataset in args.datasets:
            print(fetchers[dataset](args.data_dir, mirrors, args.quiet), flush=True)
        if args.prepare:
            run_prepare([d for d in args.datasets if d != 'inception'], args.data_dir)
    except DownloadError as error:
        print('download.py: error: %s.' % str(error).rstrip('.'), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('\ndownload.py: interrupted; partial downloads are kept as *.part and the next run resumes '
              'them.', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
