"""download.py on a disk that fills up while a `.part` file is written: one sentence, the part kept."""
import builtins
import errno
import os

import download
from test_download import (FakeUsage, MNIST_NAMES, assert_mnist_installed, error_line, offline, run,  # noqa: F401
                           serve_mnist, server, tiny_mnist)

REAL_OPEN = builtins.open


class FullDisk(object):
    """A file whose writes stop with ENOSPC once `room` bytes are written (those bytes do reach it)."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def write(self, block):
        if len(block) > self.room:
            self.handle.write(block[:self.room])
            self.room = 0
            self.handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(block)
        return self.handle.write(block)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def __getattr__(self, name):
        return getattr(self.handle, name)


def disk_fills_up(monkeypatch, room):
    """Makes download.py's writes of `.part` files hit a full disk after `room` bytes, until the
    returned dict's 'full' is set False."""
    disk = {'full': True}

    def fake_open(path, mode='r', *args, **kwargs):
        handle = REAL_OPEN(path, mode, *args, **kwargs)
        if disk['full'] and str(path).endswith('.part') and ('w' in mode or 'a' in mode):
            return FullDisk(handle, room)
        return handle
    monkeypatch.setattr(download, 'open', fake_open, raising=False)
    return disk


def test_a_full_disk_while_downloading_is_one_sentence_and_the_part_resumes(server, tiny_mnist, tmp_path,
                                                                            capsys, monkeypatch):
    serve_mnist(server, tiny_mnist)
    monkeypatch.setattr(download.shutil, 'disk_usage', lambda path: FakeUsage(free=10 ** 9))
    disk = disk_fills_up(monkeypatch, 1000)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 1, err
    line = error_line(err)
    part = os.path.join(str(tmp_path), 'mnist', MNIST_NAMES[0] + '.gz.part')
    assert 'the disk filled up while writing %s' % part in line, line
    assert 'more needed' in line and 'resume from the 1.0 kB kept' in line, line
    assert os.path.getsize(part) == 1000
    assert len(server.requests(MNIST_NAMES[0] + '.gz')) == 1  # not retried against a full disk, nor other sources

    disk['full'] = False  # space freed: the same command resumes at byte 1000
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path, '--mirror', server.url)
    assert status == 0, err
    assert server.requests(MNIST_NAMES[0] + '.gz')[-1] == 'bytes=1000-'
    assert_mnist_installed(tmp_path, tiny_mnist)


def test_a_full_disk_while_copying_from_a_local_mirror(tiny_mnist, tmp_path, capsys, monkeypatch):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    for name, data in tiny_mnist.items():
        (mirror / name).write_bytes(data)
    disk_fills_up(monkeypatch, 10)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path / 'data', '--mirror', mirror.as_uri())
    assert status == 1
    assert 'the disk filled up while writing' in error_line(err)
