"""download.py inception: the FID graph from a (file://) mirror, checked, and refused when it is not one."""
import io
import os
import subprocess
import sys
import tarfile

from conftest import REPO


def make_tgz(path, member_name, content):
    with tarfile.open(path, 'w:gz') as archive:
        info = tarfile.TarInfo(member_name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))


def run_download(*args):
    env = dict(os.environ, http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
    return subprocess.run([sys.executable, os.path.join(REPO, 'download.py')] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                          timeout=120)


def test_inception_graph_from_a_mirror_then_a_no_op(tmp_path):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    make_tgz(str(mirror / 'inception-2015-12-05.tgz'), 'classify_image_graph_def.pb',
             b'\x0a\x0bExpandDims fake graph ... pool_3 ...')
    data_dir = tmp_path / 'data'
    result = run_download('inception', '--data_dir', data_dir, '--mirror', mirror.as_uri() + '/', '--quiet')
    assert result.returncode == 0, result.stdout
    graph = data_dir / 'inception-2015-12-05' / 'classify_image_graph_def.pb'
    assert graph.read_bytes().startswith(b'\x0a\x0bExpandDims') and 'SHA-256' in result.stdout
    assert not os.path.exists(str(data_dir / 'inception-2015-12-05.tgz.part'))
    again = run_download('inception', '--data_dir', data_dir, '--quiet')  # no mirror, no network: no-op
    assert again.returncode == 0 and 'already present' in again.stdout


def test_an_archive_without_the_graph_is_refused(tmp_path):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    make_tgz(str(mirror / 'inception-2015-12-05.tgz'), 'classify_image_graph_def.pb', b'not a graph')
    result = run_download('inception', '--data_dir', tmp_path / 'data', '--mirror', mirror.as_uri() + '/',
                          '--quiet')
    assert result.returncode == 1
    assert 'download.py: error:' in result.stdout and 'Traceback' not in result.stdout
    assert not os.path.exists(str(tmp_path / 'data' / 'inception-2015-12-05' / 'classify_image_graph_def.pb'))
