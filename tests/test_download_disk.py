"""download.py on a disk that fills up while a file is written: one sentence, nothing half-written kept."""
import builtins
import errno
import gzip
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


def disk_fills_up(monkeypatch, folder, room):
    """Makes every file opened for writing under folder (by download.py or pooch) hit a full disk after
    `room` bytes, until the returned dict's 'full' is set False."""
    disk = {'full': True}
    folder = os.path.realpath(str(folder))

    def fake_open(path, mode='r', *args, **kwargs):
        handle = REAL_OPEN(path, mode, *args, **kwargs)
        writing = isinstance(path, (str, os.PathLike)) and ('w' in mode or 'a' in mode)
        if disk['full'] and writing and os.path.realpath(str(path)).startswith(folder + os.sep):
            return FullDisk(handle, room)
        return handle
    monkeypatch.setattr(builtins, 'open', fake_open)
    return disk


def test_a_full_disk_while_downloading_is_one_sentence(server, tiny_mnist, tmp_path, capsys, monkeypatch):
    serve_mnist(server, tiny_mnist)
    monkeypatch.setattr(download.shutil, 'disk_usage', lambda path: FakeUsage(free=10 ** 9))
    data_dir = tmp_path / 'data'
    disk = disk_fills_up(monkeypatch, data_dir, 1000)
    status, _, err = run(capsys, 'mnist', '--data_dir', data_dir, '--mirror', server.url)
    assert status == 1, err
    line = error_line(err)
    assert 'the disk filled up while writing into %s' % data_dir in line and '--data_dir' in line, line
    assert os.listdir(str(data_dir / 'mnist')) == []  # pooch removed its temporary file
    assert len(server.requests(MNIST_NAMES[0] + '.gz')) == 1  # neither retried nor other sources tried

    disk['full'] = False  # space freed: the same command finishes
    status, _, err = run(capsys, 'mnist', '--data_dir', data_dir, '--mirror', server.url)
    assert status == 0, err
    assert_mnist_installed(data_dir, tiny_mnist)


def test_a_full_disk_while_copying_from_a_local_mirror(tiny_mnist, tmp_path, capsys, monkeypatch):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    for name, data in tiny_mnist.items():
        (mirror / name).write_bytes(data)
    disk_fills_up(monkeypatch, tmp_path / 'data', 10)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path / 'data', '--mirror', mirror.as_uri())
    assert status == 1
    assert 'the disk filled up while writing' in error_line(err)
    assert os.listdir(str(tmp_path / 'data' / 'mnist')) == []


def test_a_full_disk_while_unpacking_is_one_sentence(tiny_mnist, tmp_path, capsys, monkeypatch):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    for name, data in tiny_mnist.items():
        (mirror / (name + '.gz')).write_bytes(gzip.compress(data))
    real_install = download.install_idx

    def install_on_a_full_disk(staged, target, *args):
        disk = disk_fills_up(monkeypatch, os.path.dirname(target), 100)
        try:
            return real_install(staged, target, *args)
        finally:
            disk['full'] = False
    monkeypatch.setattr(download, 'install_idx', install_on_a_full_disk)
    status, _, err = run(capsys, 'mnist', '--data_dir', tmp_path / 'data', '--mirror', mirror.as_uri())
    assert status == 1
    assert 'the disk filled up while writing' in error_line(err)
    assert not os.path.exists(str(tmp_path / 'data' / 'mnist' / MNIST_NAMES[0]))
