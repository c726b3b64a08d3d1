"""Tests of download.py against a threaded HTTP server on 127.0.0.1 and tiny generated stand-ins."""
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import pytest
import requests

from conftest import REPO, make_mnist

sys.path.insert(0, REPO)
import download  # noqa: E402  (the repository root is only importable after the line above)

MNIST_NAMES = list(download.MNIST_SHA256)
REAL_DOWNLOAD_FROM_DRIVE = download.download_from_drive


# ----------------------------------------------------------------------------------------------------
# A local HTTP server whose routes misbehave on request.

class LocalServer:
    """Threaded HTTP server on 127.0.0.1 (port 0); each route serves bytes with a chosen behaviour.

    Behaviours: 'file' (honours Range), 'ignore_range' (always the whole file, 200), 'cut' (every
    answer stops half-way and drops the connection), 'cut_once' (only the first does), '404', '500', '500_once', 'html' (a web
    page labelled text/html), 'html_as_data' (a web page labelled application/octet-stream), 'slow'
    (sends 1,000 bytes, then stalls until the test ends).
    """

    def __init__(self):
        self.routes = {}
        self.log = []
        self.stop = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_address[1]

    def add(self, path, body=b'', behaviour='file'):
        self.routes['/' + path] = {'body': body, 'behaviour': behaviour, 'served': 0}

    def requests(self, path):
        """The Range header (or None) of each request for path, in order."""
        return [range_header for logged, range_header in self.log if logged == '/' + path]

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, request):
        range_header = request.headers.get('Range')
        self.log.append((request.path, range_header))
        route = self.routes.get(request.path)
        if route is None:
            return self.send(request, 404, b'not found', 'text/plain')
        route['served'] += 1
        behaviour, body = route['behaviour'], route['body']
        if behaviour == '404':
            return self.send(request, 404, b'not found', 'text/plain')
        if behaviour == '500' or (behaviour == '500_once' and route['served'] == 1):
            return self.send(request, 500, b'server error', 'text/plain')
        if behaviour in ('html', 'html_as_data'):
            page = b'<!DOCTYPE html><html><body>Quota exceeded, sign in</body></html>'
            kind = 'text/html; charset=utf-8' if behaviour == 'html' else 'application/octet-stream'
            return self.send(request, 200, page, kind)

        start = 0
        if range_header and behaviour != 'ignore_range':
            start = int(range_header.split('=')[1].split('-')[0])
            if start >= len(body):
                return self.send(request, 416, b'', 'text/plain')
        payload = body[start:]
        request.send_response(206 if start else 200)
        request.send_header('Content-Type', 'application/octet-stream')
        request.send_header('Content-Length', str(len(payload)))
        if start:
            request.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(body) - 1, len(body)))
        request.end_headers()
        if behaviour == 'cut' or (behaviour == 'cut_once' and route['served'] == 1):
            request.wfile.write(payload[:len(payload) // 2])
            return  # HTTP/1.0: returning closes the connection short of Content-Length
        if behaviour == 'slow':
            request.wfile.write(payload[:1000])
            request.wfile.flush()
            self.stop.wait(30)
            return
        request.wfile.write(payload)

    @staticmethod
    def send(request, status, body, content_type):
        request.send_response(status)
        request.send_header('Content-Type', content_type)
        request.send_header('Content-Length', str(len(body)))
        request.end_headers()
        request.wfile.write(body)


@pytest.fixture
def server():
    local = LocalServer()
    yield local
    local.close()


# ----------------------------------------------------------------------------------------------------
# Tiny stand-ins for the real files, and a guard that keeps every test on this machine.

def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope='session')
def tiny_mnist(tmp_path_factory):
    """{name: raw idx bytes} of a tiny synthetic MNIST."""
    folder = make_mnist(tmp_path_factory.mktemp('tiny'), n_train=256, n_test=16)
    files = {}
    for name in MNIST_NAMES:
        with open(os.path.join(folder, name), 'rb') as source:
            files[name] = source.read()
    return files


def serve_mnist(server, files, prefix='', compresslevel=9):
    """Puts the gzip-compressed files on the server under prefix (as the public mirrors hold them)."""
    for name, data in files.items():
        server.add(prefix + name + '.gz', gzip.compress(data, compresslevel))


def jpeg_like(index):
    return b'\xff\xd8\xff\xe0' + os.urandom(64) + bytes([index % 256])


def make_celeba_zip(path, images=5, extra_members=()):
    """Writes a zip laid out like img_align_celeba.zip (plus extra_members); returns its MD5."""
    with zipfile.ZipFile(str(path), 'w') as archive:
        archive.writestr('img_align_celeba/', b'')
        for index in range(images):
            archive.writestr('img_align_celeba/%06d.jpg' % (index + 1), jpeg_like(index))
        for name in extra_members:
            archive.writestr(name, b'payload')
    with open(str(path), 'rb') as written:
        return hashlib.md5(written.read()).hexdigest()


@pytest.fixture(autouse=True)
def offline(monkeypatch, tiny_mnist):
    """Replaces every built-in source and digest, keeps retries fast and refuses non-local hosts."""
    monkeypatch.setattr(download, 'MNIST_MIRRORS', [])
    monkeypatch.setattr(download, 'MNIST_SHA256', {name: sha256(data) for name, data in tiny_mnist.items()})
    monkeypatch.setattr(download, 'CELEBA', dict(download.CELEBA, drive_id='no-drive-in-tests'))
    monkeypatch.setattr(download, 'RETRIES', 2)
    monkeypatch.setattr(download, 'BACKOFF_SECONDS', 0.01)
    monkeypatch.setattr(download, 'TIMEOUT_SECONDS', 5.0)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)

    def no_drive(*args, **kwargs):
        raise AssertionError('a test tried to download from Google Drive')

    monkeypatch.setattr(download, 'download_from_drive', no_drive)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ('127.0.0.1', 'localhost'):
            raise AssertionError('a test tried to reach %s' % host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, 'getaddrinfo', local_only)


@pytest.fixture
def tiny_celeba(monkeypatch, tmp_path):
    """A 5-image stand-in for img_align_celeba.zip; the digest and count download.py checks follow it."""
    path = tmp_path / 'tiny_celeba.zip'
    md5 = make_celeba_zip(path, images=5)
    monkeypatch.setitem(download.CELEBA, 'md5', md5)
    monkeypatch.setitem(download.CELEBA, 'images', 5)
    monkeypatch.setitem(download.CELEBA, 'zip_bytes_approx', os.path.getsize(str(path)))
    return path


class FakeUsage:
    """What shutil.disk_usage returns, for a disk of the size a test needs."""

    def __init__(self, free):
        self.total, self.used, self.free = free, 0, free


def run(capsys, *args):
    """Runs download.main(args) in this process; returns (status, stdout, stderr)."""
    status = download.main([str(arg) for arg in args] + ['--quiet'])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def error_line(stderr):
    """The final message; asserts it is a single sentence on one line."""
    lines = [line for line in stderr.splitlines() if line.startswith('download.py:')]
    assert len(lines) == 1, stderr
    assert lines[0].endswith('.') and 'Traceback' not in stderr, stderr
    return lines[0]


def assert_mnist_installed(data_dir, files):
    folder = os.path.join(str(data_dir), 'mnist')
    for name, data in files.items():
        with open(os.path.join(folder, name), 'rb') as installed:
            assert installed.read() == data
    assert sorted(os.listdir(folder)) == sorted(files), 'temporary files were left behind'


# ----------------------------------------------------------------------------------------------------
# Small pure helpers.

def test_parse_mirrors_accepts_spaces_and_commas():
    mirrors = download.parse_mirrors(' http://a/ ,http://b/  file:///c/,, ')
    assert mirrors == ['http://a/', 'http://b/', 'file:///c/']
    assert download.parse_mirrors('') == []


def test_mirror_url_joins_folder_and_name(tmp_path):
    assert download.mirror_url('http://host/mnist', 'a.gz') == 'http://host/mnist/a.gz'
    assert download.mirror_url('http://host/mnist/', 'a.gz') == 'http://host/mnist/a.gz'
    assert download.mirror_url('file:///srv/data/', 'a b') == 'file:///srv/data/a%20b'
    assert download.mirror_url(str(tmp_path), 'a.gz') == tmp_path.as_uri() + '/a.gz'


def test_candidate_urls_put_user_mirrors_first_with_both_forms():
    urls = download.candidate_urls('train-labels-idx1-ubyte', ['http://mine/'], ['https://public/'])
    assert urls == ['http://mine/train-labels-idx1-ubyte.gz', 'http://mine/train-labels-idx1-ubyte',
                    'https://public/train-labels-idx1-ubyte.gz']


def test_default_sources_are_the_published_ones():
    # The autouse fixture replaced them in this module; the file itself keeps the real ones.
    with open(os.path.join(REPO, 'download.py')) as source:
        text = source.read()
    assert 'https://ossci-datasets.s3.amazonaws.com/mnist/' in text
    assert '0B7EVK8r0v71pZjFTYXZWM3FlRnM' in text and '00d2c5bc6d35e252742224ab0c1e8fcb' in text
    assert 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db' in text


@pytest.mark.parametrize('head, kind', [
    (gzip.compress(b'x'), 'gzip'), (b'PK\x03\x04rest', None), (b'\x00\x00\x08\x03\x00\x00', None),
    (b'\n  <!DOCTYPE html><html>', 'html'), (b'<HTML><head>', 'html'), (b'hello', None)])
def test_gzip_and_web_pages_are_told_from_their_first_bytes(tmp_path, head, kind):
    path = tmp_path / 'file'
    path.write_bytes(head)
    assert download.is_gzip(str(path)) == (kind == 'gzip')
    assert download.is_html(str(path)) == (kind == 'html')


def test_member_destination_strips_the_top_folder(tmp_path):
    root = str(tmp_path / 'celebA')
    expected = os.path.join(os.path.realpath(root), '000001.jpg')
    assert download.member_destination(root, 'img_align_celeba/000001.jpg', 'img_align_celeba/') == expected
    assert download.member_destination(root, 'img_align_celeba/', 'img_align_celeba/') is None
    assert download.member_destination(root, 'sub/a.jpg').endswith(os.path.join('sub', 'a.jpg'))


@pytest.mark.parametrize('name', ['../evil.jpg', 'img_align_celeba/../../evil.jpg', '/etc/evil.jpg',
                                  'C:/evil.jpg', '..\\evil.jpg', 'a/../../evil.jpg'])
def test_member_destination_refuses_paths_outside_the_target(tmp_path, name):
    with pytest.raises(download.UnsafeArchive, match='outside'):
        download.member_destination(str(tmp_path / 'celebA'), name, 'img_align_celeba/')


def test_ensure_free_space_refuses_when_the_disk_is_small(monkeypatch, tmp_path):
    monkeypatch.setattr(download.shutil, 'disk_usage', lambda path: FakeUsage(free=1000))
    download.ensure_free_space(str(tmp_path), 999, 'x')
    with pytest.raises(download.NotEnoughSpace, match='not enough disk space'):
        download.ensure_free_space(str(tmp_path), 5000, 'x')


def test_prepare_commands_match_the_default_settings():
    assert download.prepare_command('mnist', 'd') == [
        sys.executable, os.path.join(REPO, 'main.py'), '--dataset', 'mnist', '--input_height=28',
        '--output_height=28', '--prepare', '--data_dir', 'd']
    assert download.prepare_command('celebA', 'd')[2:] == [
        '--dataset', 'celebA', '--input_height=108', '--crop', '--prepare', '--data_dir', 'd']


# ----------------------------------------------------------------------------------------------------
# MNIST over HTTP.

def test_mnist_happy_path(server, tiny_mnist, tmp_path, capsys):
    serve_mnist(server, tiny_mnist)
    status = download.main(['mnist', '--data_dir', str(tmp_path / 'data'), '--mirror', server.url])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert_mnist_installed(tmp_path / 'data', tiny_mnist)
    assert 'mnist: 4 files ok (4 downloaded, 0 already present)' in captured.out
    assert 'train-images-idx3-ubyte' in captured.err and '100%' in captured.err  # the progress bars


def test_second_run_verifies_and_does_nothing_else(server, tiny_mnist, tmp_path, capsys):
    serve_mnist(server, tiny_mnist)
    assert run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)[0] == 0
    requests_before = len(server.log)
    status, out, _ = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0 and len(server.log) == requests_before
    assert '4 files ok (0 downloaded, 4 already present)' in out


def test_a_corrupt_installed_file_is_fetched_again(server, tiny_mnist, tmp_path, capsys):
    serve_mnist(server, tiny_mnist)
    folder = tmp_path / 'mnist'
    folder.mkdir()
    for name, data in tiny_mnist.items():
        (folder / name).write_bytes(data)
    (folder / MNIST_NAMES[0]).write_bytes(b'\x00\x00\x08\x03 truncated')
    status, out, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0 and '(1 downloaded, 3 already present)' in out and 'SHA-256' in err
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_a_cut_connection_is_retried(server, tiny_mnist, tmp_path, capsys):
    name = MNIST_NAMES[0]
    serve_mnist(server, tiny_mnist)
    packed = server.routes['/' + name + '.gz']['body']
    server.add(name + '.gz', packed, 'cut_once')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0, err
    assert server.requests(name + '.gz') == [None, None]  # the whole file again, into a new temporary file
    assert 'connection broke off' in err and 'retrying' in err
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_a_download_that_keeps_breaking_leaves_nothing(server, tiny_mnist, tmp_path, capsys):
    name = MNIST_NAMES[0]
    serve_mnist(server, tiny_mnist)
    server.add(name + '.gz', server.routes['/' + name + '.gz']['body'], 'cut')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1 and 'no mirror could deliver' in error_line(err), err
    assert len(server.requests(name + '.gz')) == 1 + download.RETRIES
    # Neither a final name nor a temporary file is left behind.
    assert os.listdir(str(tmp_path / 'mnist')) == []


def test_a_leftover_gz_beside_the_file_is_used(server, tiny_mnist, tmp_path, capsys):
    (tmp_path / 'mnist').mkdir()
    for name, data in tiny_mnist.items():
        (tmp_path / 'mnist' / (name + '.gz')).write_bytes(gzip.compress(data))
    status, out, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0 and '(4 downloaded, 0 already present)' in out, err
    assert server.log == []
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_a_corrupt_mirror_is_refused_and_the_next_one_used(server, tiny_mnist, tmp_path, capsys):
    serve_mnist(server, {name: data[:-1] + b'\x01' for name, data in tiny_mnist.items()}, prefix='bad/')
    serve_mnist(server, tiny_mnist, prefix='good/')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url + 'bad/',
                         '--mirror', server.url + 'good/')
    assert status == 0, err
    assert 'SHA-256' in err and 'trying the next source' in err
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_mirror_fallback_after_404(server, tiny_mnist, tmp_path, capsys):
    serve_mnist(server, tiny_mnist, prefix='good/')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url + 'empty/',
                         '--mirror', server.url + 'good/')
    assert status == 0, err
    assert 'HTTP 404' in err and 'trying the next source' in err
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_user_mirror_may_hold_raw_files(server, tiny_mnist, tmp_path, capsys):
    for name, data in tiny_mnist.items():
        server.add(name, data)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0, err
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_server_error_is_retried_with_backoff(server, tiny_mnist, tmp_path, capsys):
    name = MNIST_NAMES[1]
    serve_mnist(server, tiny_mnist)
    server.add(name + '.gz', server.routes['/' + name + '.gz']['body'], '500_once')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0, err
    assert len(server.requests(name + '.gz')) == 2 and 'HTTP 500' in err


def test_http_errors_everywhere_fail_with_one_sentence(server, tmp_path, capsys):
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1
    assert 'no mirror could deliver train-images-idx3-ubyte' in error_line(err)
    assert os.listdir(str(tmp_path / 'mnist')) == []


def test_digest_mismatch_after_all_mirrors(server, tiny_mnist, tmp_path, capsys):
    wrong = {name: data[:-1] + b'\x01' for name, data in tiny_mnist.items()}
    serve_mnist(server, wrong, prefix='a/')
    serve_mnist(server, wrong, prefix='b/')
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url + 'a/',
                         '--mirror', server.url + 'b/')
    assert status == 1
    assert 'failed its digest check from every source' in error_line(err)
    # Nothing that could pass for a finished (or resumable) download is left.
    assert os.listdir(str(tmp_path / 'mnist')) == []


@pytest.mark.parametrize('behaviour', ['html', 'html_as_data'])
def test_html_page_instead_of_data_is_refused(server, tmp_path, capsys, behaviour):
    for name in MNIST_NAMES:
        server.add(name + '.gz', behaviour=behaviour)
        server.add(name, behaviour=behaviour)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1
    assert 'web page instead of train-images-idx3-ubyte' in error_line(err)
    assert len(server.requests(MNIST_NAMES[0] + '.gz')) == 1  # a web page is not retried
    assert os.listdir(str(tmp_path / 'mnist')) == []


def test_disk_space_is_checked_before_downloading(server, tiny_mnist, tmp_path, capsys, monkeypatch):
    serve_mnist(server, tiny_mnist)
    monkeypatch.setattr(download.shutil, 'disk_usage', lambda path: FakeUsage(free=100))
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1
    assert 'not enough disk space' in error_line(err)
    assert os.listdir(str(tmp_path / 'mnist')) == []


def test_prepare_runs_the_training_preparation(server, tiny_mnist, tmp_path, capsys, monkeypatch):
    serve_mnist(server, tiny_mnist)
    fake_repo = tmp_path / 'repo'
    fake_repo.mkdir()
    (fake_repo / 'main.py').write_text('')
    monkeypatch.setattr(download, 'REPO', str(fake_repo))
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(download.subprocess, 'run', fake_run)
    data_dir = str(tmp_path / 'data')
    status, _, err = run(capsys, 'mnist', '--data_dir', data_dir, '--mirror', server.url, '--prepare')
    assert status == 0, err
    assert commands == [[sys.executable, str(fake_repo / 'main.py'), '--dataset', 'mnist',
                         '--input_height=28', '--output_height=28', '--prepare', '--data_dir', data_dir]]

    monkeypatch.setattr(download.subprocess, 'run',
                        lambda command, **kwargs: subprocess.CompletedProcess(command, 3))
    status, _, err = run(capsys, 'mnist', '--data_dir', data_dir, '--prepare')
    assert status == 1 and 'main.py exited with status 3' in error_line(err)


# ----------------------------------------------------------------------------------------------------
# celebA.

def celeba_images(data_dir):
    return sorted(name for name in os.listdir(os.path.join(str(data_dir), 'celebA')) if name.endswith('.jpg'))


def test_celeba_from_a_mirror_then_a_no_op(server, tiny_celeba, tmp_path, capsys):
    server.add('img_align_celeba.zip', tiny_celeba.read_bytes())
    data_dir = tmp_path / 'data'
    status, out, err = run(capsys, 'celebA', '--data_dir', data_dir, '--mirror', server.url)
    assert status == 0, err
    assert celeba_images(data_dir) == ['%06d.jpg' % index for index in range(1, 6)]
    assert 'celebA: 5 images ok (downloaded and extracted)' in out
    # Our own download is removed once extracted; nothing temporary is left.
    assert sorted(os.listdir(str(data_dir))) == ['celebA']
    requests_before = len(server.log)
    status, out, _ = run(capsys, 'celeba', '--data_dir', data_dir, '--mirror', server.url)
    assert status == 0 and len(server.log) == requests_before and '(already present)' in out


@pytest.mark.parametrize('where', ['.', 'celebA'])
def test_celeba_zip_put_there_by_hand_is_verified_and_extracted(tiny_celeba, tmp_path, capsys, where):
    folder = tmp_path / where
    folder.mkdir(exist_ok=True)
    (folder / 'img_align_celeba.zip').write_bytes(tiny_celeba.read_bytes())
    status, out, err = run(capsys, 'celebA', '--data_dir', tmp_path)  # Drive would raise (autouse guard)
    assert status == 0, err
    assert len(celeba_images(tmp_path)) == 5 and 'extracted from' in out
    assert (tmp_path / 'img_align_celeba.zip').is_file()  # the user's zip is theirs to delete


def test_celeba_zip_with_the_wrong_md5_is_reported(tiny_celeba, tmp_path, capsys):
    (tmp_path / 'img_align_celeba.zip').write_bytes(tiny_celeba.read_bytes()[:-10])
    status, _, err = run(capsys, 'celebA', '--data_dir', tmp_path)
    assert status == 1 and 'has MD5' in error_line(err)
    assert not (tmp_path / 'celebA').exists()


def test_celeba_from_google_drive(tiny_celeba, tmp_path, capsys, monkeypatch):
    calls = []

    def fake_drive(drive_id, output, quiet):
        calls.append(drive_id)
        with open(output, 'wb') as written:
            written.write(tiny_celeba.read_bytes())

    monkeypatch.setattr(download, 'download_from_drive', fake_drive)
    status, _, err = run(capsys, 'celebA', '--data_dir', tmp_path)
    assert status == 0, err
    assert calls == ['no-drive-in-tests'] and len(celeba_images(tmp_path)) == 5


def test_celeba_mirror_with_the_wrong_md5_is_refused_then_drive(server, tiny_celeba, tmp_path, capsys,
                                                                 monkeypatch):
    server.add('img_align_celeba.zip', tiny_celeba.read_bytes()[:-10] + b'0123456789')
    monkeypatch.setattr(download, 'download_from_drive',
                        lambda drive_id, output, quiet: shutil.copyfile(str(tiny_celeba), output))
    data_dir = tmp_path / 'data'
    status, out, err = run(capsys, 'celebA', '--data_dir', data_dir, '--mirror', server.url)
    assert status == 0, err
    assert 'does not have the published MD5' in err and 'downloaded and extracted' in out
    assert sorted(os.listdir(str(data_dir))) == ['celebA']


def test_celeba_mirror_cut_once_is_retried(server, tiny_celeba, tmp_path, capsys):
    server.add('img_align_celeba.zip', tiny_celeba.read_bytes(), 'cut_once')
    status, _, err = run(capsys, 'celebA', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0, err
    assert len(server.requests('img_align_celeba.zip')) == 2 and len(celeba_images(tmp_path)) == 5


@pytest.mark.parametrize('refusal', ['raises', 'writes_html'])
def test_drive_refusal_says_how_to_download_by_hand(server, tiny_celeba, tmp_path, capsys, monkeypatch,
                                                    refusal):
    server.add('img_align_celeba.zip', behaviour='html')  # the user's mirror answers with a web page too
    # gdown either raises or, in older versions, saves Drive's quota page as the file.
    monkeypatch.setitem(sys.modules, 'gdown', FakeGdown('quota' if refusal == 'raises' else 'html'))
    monkeypatch.setattr(download, 'download_from_drive', REAL_DOWNLOAD_FROM_DRIVE)
    status, _, err = run(capsys, 'celebA', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1
    message = error_line(err)
    assert 'Google Drive refused' in message and 'by hand' in message and 'no-drive-in-tests' in message
    assert os.path.join(str(tmp_path), 'img_align_celeba.zip') in message
    assert 'web page' in err  # the mirror's answer was reported on the way
    assert not (tmp_path / 'celebA').exists() and not (tmp_path / 'img_align_celeba.zip').exists()


def test_zip_slip_archive_is_refused(tiny_celeba, tmp_path, capsys, monkeypatch):
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    md5 = make_celeba_zip(data_dir / 'img_align_celeba.zip', images=5,
                          extra_members=['img_align_celeba/../../escaped.jpg'])
    monkeypatch.setitem(download.CELEBA, 'md5', md5)
    status, _, err = run(capsys, 'celebA', '--data_dir', data_dir)
    assert status == 1 and 'outside' in error_line(err)
    assert not (tmp_path / 'escaped.jpg').exists()
    assert sorted(os.listdir(str(data_dir))) == ['img_align_celeba.zip']


def test_interrupted_extraction_does_not_look_finished(tiny_celeba, tmp_path, capsys, monkeypatch):
    (tmp_path / 'img_align_celeba.zip').write_bytes(tiny_celeba.read_bytes())
    real_copy = download.shutil.copyfileobj
    copied = []

    def copy_then_interrupt(source, target, length=0):
        if len(copied) == 2:
            raise KeyboardInterrupt
        copied.append(1)
        real_copy(source, target, length)

    monkeypatch.setattr(download.shutil, 'copyfileobj', copy_then_interrupt)
    status, _, err = run(capsys, 'celebA', '--data_dir', tmp_path)
    assert status == 130 and 'interrupted' in err
    assert not (tmp_path / 'celebA').exists()

    monkeypatch.setattr(download.shutil, 'copyfileobj', real_copy)
    status, out, err = run(capsys, 'celebA', '--data_dir', tmp_path)
    assert status == 0, err
    assert len(celeba_images(tmp_path)) == 5 and not (tmp_path / 'celebA.partial').exists()


class FakeGdown:
    """Stands in for the gdown module: records the call and plays one of Drive's answers."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def download(self, **kwargs):
        self.calls.append(kwargs)
        if self.answer == 'ok':
            with open(kwargs['output'], 'wb') as written:
                written.write(b'PK\x05\x06' + b'\x00' * 18)
            return kwargs['output']
        if self.answer == 'none':  # older gdown prints the refusal and returns None
            return None
        if self.answer == 'html':
            with open(kwargs['output'], 'wb') as written:
                written.write(b'<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title>')
            return kwargs['output']
        if self.answer == 'offline':
            raise requests.ConnectionError('Failed to establish a new connection')
        raise type('FileURLRetrievalError', (Exception,), {})(
            'Too many users have viewed or downloaded this file recently')


@pytest.mark.parametrize('answer, error', [('ok', None), ('none', download.HtmlInsteadOfData),
                                           ('quota', download.HtmlInsteadOfData),
                                           ('html', download.HtmlInsteadOfData),
                                           ('offline', download.Unreachable)])
def test_drive_wrapper_uses_gdown_and_classifies_refusals(tmp_path, monkeypatch, answer, error):
    fake = FakeGdown(answer)
    monkeypatch.setitem(sys.modules, 'gdown', fake)
    output = str(tmp_path / 'img_align_celeba.zip.drive')
    if error is None:
        REAL_DOWNLOAD_FROM_DRIVE('some-id', output, True)
        assert os.path.isfile(output)
    else:
        with pytest.raises(error):
            REAL_DOWNLOAD_FROM_DRIVE('some-id', output, True)
    assert fake.calls == [{'id': 'some-id', 'output': output, 'quiet': True, 'resume': True}]


# ----------------------------------------------------------------------------------------------------
# The command a user types.

# Runs download.main in a fresh interpreter after pointing the module at the tiny stand-ins.
CLI_PRELUDE = """
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even under a background job
sys.path.insert(0, sys.argv.pop(1))
import download
settings = json.loads(sys.argv.pop(1))
download.MNIST_SHA256, download.MNIST_MIRRORS = settings['mnist_sha256'], []
download.CELEBA['drive_id'] = 'no-drive-in-tests'
download.RETRIES, download.BACKOFF_SECONDS, download.TIMEOUT_SECONDS = 2, 0.01, 5.0
sys.exit(download.main())
"""


@pytest.fixture
def cli(tmp_path, tiny_mnist):
    """Runs `download.py ARGS` in a new process with the tiny digests, no built-in sources and no way out."""
    settings = json.dumps({'mnist_sha256': {name: sha256(data) for name, data in tiny_mnist.items()}})
    blackhole = 'http://127.0.0.1:9'  # any request that is not for 127.0.0.1 would go here and fail
    base_env = dict(os.environ, http_proxy=blackhole, https_proxy=blackhole, HTTP_PROXY=blackhole,
                    HTTPS_PROXY=blackhole, no_proxy='127.0.0.1,localhost', NO_PROXY='127.0.0.1,localhost')
    base_env.pop(download.MIRROR_ENV, None)

    def command(*args, env=None, popen=False):
        full_env = dict(base_env, **(env or {}))
        line = [sys.executable, '-c', CLI_PRELUDE, REPO, settings] + [str(arg) for arg in args]
        if popen:
            return subprocess.Popen(line, cwd=str(tmp_path), env=full_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, universal_newlines=True)
        return subprocess.run(line, cwd=str(tmp_path), env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)

    return command


def test_command_line_http_mirror_then_a_second_run(cli, server, tiny_mnist, tmp_path):
    serve_mnist(server, tiny_mnist)
    first = cli('mnist', '--mirror', server.url)
    assert first.returncode == 0, first.stderr
    assert_mnist_installed(tmp_path / 'data', tiny_mnist)  # ./data by default
    assert 'mnist: 4 files ok (4 downloaded, 0 already present) in ./data/mnist' in first.stdout
    requests_before = len(server.log)
    second = cli('mnist', '--mirror', server.url)
    assert second.returncode == 0 and len(server.log) == requests_before
    assert '(0 downloaded, 4 already present)' in second.stdout


def test_command_line_file_mirror_and_local_folder(cli, tiny_mnist, tmp_path):
    packed, raw = tmp_path / 'packed', tmp_path / 'raw'
    packed.mkdir()
    raw.mkdir()
    for name, data in tiny_mnist.items():
        (packed / (name + '.gz')).write_bytes(gzip.compress(data))
        (raw / name).write_bytes(data)
    result = cli('mnist', '--data_dir', tmp_path / 'a', '--mirror', packed.as_uri() + '/')
    assert result.returncode == 0, result.stderr
    assert_mnist_installed(tmp_path / 'a', tiny_mnist)
    result = cli('mnist', '--data_dir', tmp_path / 'b', '--mirror', raw)
    assert result.returncode == 0, result.stderr
    assert_mnist_installed(tmp_path / 'b', tiny_mnist)


def test_command_line_mirror_from_the_environment(cli, server, tiny_mnist, tmp_path):
    serve_mnist(server, tiny_mnist)
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    unreachable = 'http://127.0.0.1:%d/' % closed.getsockname()[1]  # bound, never listening
    result = cli('mnist', env={download.MIRROR_ENV: unreachable + ', ' + server.url})
    closed.close()
    assert result.returncode == 0, result.stderr
    assert 'Connection refused' in result.stderr
    assert_mnist_installed(tmp_path / 'data', tiny_mnist)


def test_command_line_no_network_is_one_sentence(cli, tmp_path):
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    result = cli('mnist', '--mirror', 'http://127.0.0.1:%d/' % closed.getsockname()[1])
    closed.close()
    assert result.returncode == 1
    assert 'no mirror could be reached for train-images-idx3-ubyte' in error_line(result.stderr)


def test_command_line_digest_mismatch_is_one_sentence(cli, server, tiny_mnist):
    serve_mnist(server, {name: data + b'\x00' for name, data in tiny_mnist.items()})
    result = cli('mnist', '--mirror', server.url)
    assert result.returncode == 1
    assert 'failed its digest check' in error_line(result.stderr)


def test_command_line_ctrl_c_leaves_nothing_half_written(cli, server, tiny_mnist, tmp_path):
    name = MNIST_NAMES[0]
    serve_mnist(server, tiny_mnist)
    packed = server.routes['/' + name + '.gz']['body']
    server.add(name + '.gz', packed, 'slow')
    folder = tmp_path / 'data' / 'mnist'
    process = cli('mnist', '--mirror', server.url, popen=True)
    deadline = time.time() + 20
    while not (folder.is_dir() and os.listdir(str(folder)) and server.requests(name + '.gz')) \
            and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert 'interrupted' in stderr and 'Traceback' not in stderr
    assert os.listdir(str(folder)) == []  # pooch's temporary file is gone, no final name was written

    server.add(name + '.gz', packed)
    result = cli('mnist', '--mirror', server.url)
    assert result.returncode == 0, result.stderr
    assert_mnist_installed(tmp_path / 'data', tiny_mnist)


def test_command_line_lsun_and_unknown_names_from_the_script():
    script = [sys.executable, os.path.join(REPO, 'download.py')]
    lsun = subprocess.run(script + ['lsun'], stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert lsun.returncode == 2 and '--dataset NAME' in lsun.stderr and 'Traceback' not in lsun.stderr


def test_command_line_refuses_lsun_and_unknown_names(cli):
    lsun = cli('lsun')
    assert lsun.returncode == 2 and '--dataset NAME' in lsun.stderr and 'Traceback' not in lsun.stderr
    unknown = cli('cifar')
    assert unknown.returncode == 2 and 'choose mnist, celebA or inception' in unknown.stderr
