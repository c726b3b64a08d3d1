"""Fetches the data sets main.py trains on (MNIST, celebA) into data_dir and verifies them by digest."""
import argparse
import contextlib
import errno
import gzip
import hashlib
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
import zlib

import pooch
import requests
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
    # About 1.4 GB; only used to check the free disk space before downloading.
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
    'required_nodes': ['ExpandDims', 'pool_3'],  # the FID's input (fid.py feeds it) and output
    'archive_bytes_approx': 88931400,  # only for the free-space check
}
# Marks a finished celebA extraction (JSON with the image count): a folder without it is unfinished.
CELEBA_MARKER = '.download_complete'

MIRROR_ENV = 'DCGAN_DATA_MIRROR'
RETRIES = 4
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 1 << 16
DISK_FULL = (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))
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

# pooch's "Downloading ... to file ..." lines would repeat what the progress bars show.
pooch.get_logger().setLevel(logging.WARNING)


# ----------------------------------------------------------------------------------------------------
# Errors: each message is one sentence the user can act on; main() prints it and exits with status 1.

class DownloadError(Exception):
    """A failure the user can act on; str() is one sentence, brief a few words for the summary."""

    def __init__(self, message, url=None, brief=None):
        super().__init__(message)
        self.url = url
        self.brief = brief or message


class Unreachable(DownloadError):
    """The source could not be contacted at all (no network, refused, unknown host)."""


class Unavailable(DownloadError):
    """The source answered with an HTTP error, lacks the file, or broke off the transfer."""


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


def file_start(path, count=1024):
    with open(path, 'rb') as source:
        return source.read(count)


def is_gzip(path):
    return file_start(path, 2) == b'\x1f\x8b'


def is_html(path):
    """True for a web page (an error, login or quota page) saved where a data file was expected."""
    text = file_start(path).lstrip(b'\xef\xbb\xbf \t\r\n').lower()
    return text.startswith((b'<!doctype html', b'<html')) or b'<html' in text[:512]


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
    root_path = os.path.realpath(root)
    destination = os.path.realpath(os.path.join(root_path, *parts))
    if (name.startswith('/') or ':' in parts[0] or '..' in parts
            or os.path.commonpath([root_path, destination]) != root_path):
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
    """The innermost cause of a network or OS error in a few words ('Connection refused')."""
    while True:
        inner = (getattr(error, 'reason', None) or error.__cause__
                 or next((arg for arg in error.args if isinstance(arg, BaseException)), None))
        if not isinstance(inner, BaseException):
            break
        error = inner
    return getattr(error, 'strerror', None) or one_line(error) or type(error).__name__


def ensure_free_space(folder, needed_bytes, what):
    """Raises NotEnoughSpace when folder's file system has less than needed_bytes free."""
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise NotEnoughSpace('not enough disk space in %s for %s: %s free, %s needed; free some space '
                             'or choose another --data_dir' % (folder, what, format_bytes(free),
                                                               format_bytes(needed_bytes)))


def remove_if_exists(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def warn(message):
    print(message, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# Fetching one URL: pooch writes a temporary file, checks its hash and renames it into place.

def transfer(url, output_file, label, quiet):
    """pooch's downloader: writes url (http, https or file) to output_file under a progress bar.

    Raises Unreachable when no answer comes, requests' errors for an HTTP error status or a broken
    transfer, and HtmlInsteadOfData for a web page.
    """
    scheme = urllib.parse.urlparse(url).scheme
    with contextlib.ExitStack() as closing:
        if scheme == 'file':
            source = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
            if not os.path.isfile(source):
                folder, name = os.path.split(source)
                raise Unavailable('%s holds no file %s' % (folder, name), url, 'no file %s' % name)
            copied = closing.enter_context(open(source, 'rb'))
            size = os.path.getsize(source)
            blocks = iter(lambda: copied.read(CHUNK_BYTES), b'')
        elif scheme in ('http', 'https'):
            try:  # identity: the bytes as stored, so nothing is unpacked on the way
                response = closing.enter_context(requests.get(
                    url, stream=True, timeout=TIMEOUT_SECONDS, headers={'Accept-Encoding': 'identity'}))
            except requests.RequestException as error:
                reason = short_reason(error)
                raise Unreachable('cannot reach %s (%s)' % (url, reason), url, reason)
            response.raise_for_status()
            size = int(response.headers.get('Content-Length') or 0) or None
            blocks = response.iter_content(CHUNK_BYTES)
        else:
            raise DownloadError('cannot download %s: a mirror is an http://, https:// or file:// URL, or '
                                'a local folder' % url)
        with open(output_file, 'wb') as written, tqdm(total=size, desc=label, unit='B', unit_scale=True,
                                                      disable=quiet, file=sys.stderr) as bar:
            for block in blocks:
                written.write(block)
                bar.update(len(block))
    if is_html(output_file):
        raise HtmlInsteadOfData('%s sent a web page instead of the data file' % url, url, 'a web page')


def download(url, path, known_hash=None, quiet=False, label=None):
    """Fetches url to path (replacing it) with pooch; known_hash is 'md5:...', 'sha256:...' or None.

    pooch writes a temporary file, checks known_hash and renames it, so path only ever holds a whole,
    matching file. A transfer that breaks off, or an HTTP 5xx/408/429 answer, is retried from the
    start after a growing pause (RETRIES, BACKOFF_SECONDS). Raises DownloadError (one sentence).
    """
    folder, name = os.path.split(os.path.abspath(path))
    remove_if_exists(path)  # pooch would keep a file that is already there
    for attempt in range(RETRIES + 1):
        try:
            pooch.retrieve(url, known_hash, fname=name, path=folder,
                           downloader=lambda url, output_file, _: transfer(url, output_file, label or name,
                                                                          quiet))
            return
        except requests.HTTPError as error:
            code = error.response.status_code
            brief = ('HTTP %d %s' % (code, error.response.reason or '')).strip()
            failure = Unavailable('%s answered %s' % (url, brief), url, brief)
            transient = code >= 500 or code in (408, 429)
        except requests.RequestException:  # the answer had begun: the connection broke or stalled
            brief = 'the connection broke off during the transfer'
            failure = Unavailable('%s from %s' % (brief, url), url, brief)
            transient = True
        except ValueError:  # pooch found another hash
            if not known_hash:
                raise
            algorithm = known_hash.split(':')[0].upper()
            raise DigestMismatch('%s from %s does not have the published %s' % (name, url, algorithm), url,
                                 'wrong ' + algorithm)
        if not transient or attempt == RETRIES:
            raise failure
        delay = BACKOFF_SECONDS * 2 ** attempt
        warn('%s; retrying in %.1f s' % (failure, delay))
        time.sleep(delay)


def source_label(url):
    """Short name of a source for messages: the host of a URL, the folder of a file:// URL."""
    parsed = urllib.parse.urlparse(url or '')
    if parsed.netloc:
        return parsed.netloc
    return os.path.dirname(urllib.request.url2pathname(parsed.path)) or (url or 'unknown source')


def failure_summary(name, failures):
    """One DownloadError saying why no source delivered `name`, from the per-source errors.

    The most telling failure picks the sentence: a digest mismatch, then a web page, then an HTTP
    error or broken transfer, else no source could be reached at all.
    """
    details = '; '.join(dict.fromkeys('%s: %s' % (source_label(e.url), e.brief) for e in failures))
    kinds = set(type(error) for error in failures)
    if DigestMismatch in kinds:
        return DigestMismatch('%s failed its digest check from every source that sent it (%s), so '
                              'nothing was kept; try again later or pass --mirror URL with a good copy'
                              % (name, details))
    if HtmlInsteadOfData in kinds:
        return HtmlInsteadOfData('got a web page instead of %s (%s), often a proxy login or error page; '
                                 'open that address in a browser or pass --mirror URL' % (name, details))
    if not failures:
        return DownloadError('no source is configured for %s; pass --mirror URL' % name)
    if kinds - {Unreachable}:
        return DownloadError('no mirror could deliver %s (%s); try again later or pass --mirror URL '
                             'with a copy of the file' % (name, details))
    return Unreachable('no mirror could be reached for %s (%s); check the network connection or pass '
                       '--mirror URL with a local copy' % (name, details))


def first_that_delivers(name, urls, fetch_one):
    """Calls fetch_one(url) for each url until one returns; raises the failure summary otherwise."""
    failures = []
    for url in urls:
        try:
            return fetch_one(url)
        except (NotEnoughSpace, UnsafeArchive):
            raise
        except DownloadError as error:
            failures.append(error)
            warn('%s; trying the next source' % error)
    raise failure_summary(name, failures)


# ----------------------------------------------------------------------------------------------------
# MNIST.

def install_idx(staged, target, expected_sha256, source):
    """Unpacks a fetched MNIST .gz (or copies a raw file), checks the raw SHA-256, renames it to target.

    staged is removed either way, so only a verified file ever has target's name.
    """
    unpacked = target + '.unpacked'
    digest = hashlib.sha256()
    opener = gzip.open if is_gzip(staged) else open
    try:
        with opener(staged, 'rb') as packed, open(unpacked, 'wb') as raw:
            for block in iter(lambda: packed.read(CHUNK_BYTES * 16), b''):
                digest.update(block)
                raw.write(block)
    except (OSError, EOFError, zlib.error) as error:
        remove_if_exists(unpacked)
        if isinstance(error, OSError) and error.errno:  # the disk, not the data
            raise
        os.remove(staged)
        raise DigestMismatch('%s is not a valid gzip file (%s)' % (source, short_reason(error)), source,
                             'not a valid gzip file')
    os.remove(staged)
    actual = digest.hexdigest()
    if actual != expected_sha256:
        os.remove(unpacked)
        brief = 'SHA-256 %s... instead of %s...' % (actual[:12], expected_sha256[:12])
        raise DigestMismatch('%s from %s has %s' % (os.path.basename(target), source, brief), source,
                             brief)
    os.replace(unpacked, target)


def fetch_idx(url, target, expected_sha256, quiet):
    """Downloads one MNIST file from url, verifies it and puts it at target."""
    name = os.path.basename(target)
    if not url.endswith('.gz'):  # a raw copy has the published digest itself, which pooch checks
        return download(url, target, 'sha256:' + expected_sha256, quiet)
    download(url, target + '.gz', None, quiet, label=name)
    install_idx(target + '.gz', target, expected_sha256, url)


def fetch_mnist(data_dir, user_mirrors, quiet):
    """Makes data_dir/mnist hold the four verified idx files; returns the summary line."""
    folder = os.path.join(data_dir, 'mnist')
    os.makedirs(folder, exist_ok=True)
    downloaded = present = 0
    for name, expected in MNIST_SHA256.items():
        target = os.path.join(folder, name)
        if os.path.isfile(target):
            if pooch.file_hash(target) == expected:
                present += 1
                continue
            warn('%s does not match its SHA-256 digest; fetching it again' % target)
            os.remove(target)
        if os.path.isfile(target + '.gz'):
            # A .gz already beside it (from an older downloader or a manual copy) saves a download.
            try:
                install_idx(target + '.gz', target, expected, target + '.gz')
                downloaded += 1
                continue
            except DigestMismatch as error:
                warn('%s; trying the mirrors' % error)
        ensure_free_space(folder, 2 * MNIST_RAW_BYTES.get(name, 0), name)
        first_that_delivers(name, candidate_urls(name, user_mirrors, MNIST_MIRRORS),
                            lambda url: fetch_idx(url, target, expected, quiet))
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
    """Fetches a Google Drive file with gdown (which follows Drive's confirmation pages) to output.

    gdown resumes its own partial file when run again. Raises DownloadError when Drive refuses.
    """
    import gdown  # imported here: it is only needed for celebA, and slow to import
    try:
        result = gdown.download(id=drive_id, output=output, quiet=quiet, resume=True)
    except Exception as error:  # gdown raises many types; each means "no file came"
        offline = isinstance(error, (requests.ConnectionError, requests.Timeout))
        kind = Unreachable if offline else HtmlInsteadOfData
        reason = one_line(error) or type(error).__name__
        raise kind('Google Drive did not send the file (%s)' % reason, brief=reason)
    # Older gdown versions print the refusal and return None instead of raising.
    if result is None or not os.path.isfile(output):
        raise HtmlInsteadOfData('Google Drive did not send the file', brief='gdown got no file')
    if is_html(output):
        os.remove(output)
        raise HtmlInsteadOfData('Google Drive sent a web page instead of the file',
                                brief='it sent a web page instead of the archive')


def fetch_celeba_zip(data_dir, zip_path, user_mirrors, quiet):
    """Downloads img_align_celeba.zip from the user's mirrors, then Google Drive; verifies its MD5."""
    name = CELEBA['zip_name']
    ensure_free_space(data_dir, 2 * CELEBA['zip_bytes_approx'], name + ' and its extracted images')
    for url in [mirror_url(base, name) for base in user_mirrors]:
        try:
            return download(url, zip_path, 'md5:' + CELEBA['md5'], quiet)
        except DownloadError as error:
            warn('%s; trying the next source' % error)

    # Drive gets its own output name: gdown keeps its partial file beside it and resumes it.
    drive_output = zip_path + '.drive'
    try:
        download_from_drive(CELEBA['drive_id'], drive_output, quiet)
    except HtmlInsteadOfData as error:
        raise HtmlInsteadOfData('Google Drive refused to send %s (%s; usually its daily download quota): %s'
                                % (name, error.brief, manual_celeba_steps(data_dir)))
    except Unreachable as error:
        raise Unreachable('cannot reach Google Drive for %s (%s): check the network connection, or %s'
                          % (name, error.brief, manual_celeba_steps(data_dir)))
    actual = pooch.file_hash(drive_output, alg='md5')
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
        actual = pooch.file_hash(zip_path, alg='md5')
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
    archive_path = os.path.join(data_dir, archive)
    ensure_free_space(data_dir, 2 * INCEPTION['archive_bytes_approx'], archive)

    def fetch_one(url):
        download(url, archive_path, None, quiet)
        try:
            if not is_gzip(archive_path):
                raise DigestMismatch('%s from %s is not a gzip archive' % (archive, url), url,
                                     'not a gzip archive')
            extract_inception_graph(archive_path, target, url)
        finally:
            os.remove(archive_path)

    first_that_delivers(archive, [mirror_url(base, archive) for base in user_mirrors] + [INCEPTION['url']],
                        fetch_one)
    return 'inception: %s ok (downloaded; SHA-256 %s)' % (target, pooch.file_hash(target))


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
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.errno:  # the disk, not the archive
            raise
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
        mirrors = args.mirror + parse_mirrors(os.environ.get(MIRROR_ENV, ''))
        os.makedirs(args.data_dir, exist_ok=True)
        for dataset in args.datasets:
            print(fetchers[dataset](args.data_dir, mirrors, args.quiet), flush=True)
        if args.prepare:
            run_prepare([d for d in args.datasets if d != 'inception'], args.data_dir)
    except DownloadError as error:
        message = str(error)
    except OSError as error:  # the disk: network failures are DownloadErrors by now
        where = error.filename or args.data_dir
        if error.errno in DISK_FULL:
            message = ('the disk filled up while writing into %s: free some space or choose another '
                       '--data_dir, then run the same command again' % where)
        else:
            message = 'cannot use %s (%s)' % (where, short_reason(error))
    except KeyboardInterrupt:
        print('\ndownload.py: interrupted; run the same command again to finish (a Google Drive download '
              'resumes where it stopped).', file=sys.stderr)
        return 130
    else:
        return 0
    print('download.py: error: %s.' % message.rstrip('.'), file=sys.stderr)
    return 1

if __name__ == '__main__':
    sys.exit(main())
