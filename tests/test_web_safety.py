"""web/app.py against hostile or odd run folders: symlinks out, deeply nested JSON, FIFOs, huge folders."""
import json
import os
import sys
import threading
import time

import numpy as np
import pytest

import utils
from test_web import client_for, make_run, step_line, webapp

needs_posix = pytest.mark.skipif(sys.platform == 'win32' or not hasattr(os, 'mkfifo'), reason='needs symlinks and FIFOs')


@needs_posix
def test_json_readers_refuse_symlinks_out_of_the_run(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'config.json').write_text(json.dumps({'dataset': 'SECRET-CONFIG', 'z_dim': 7}))
    (outside / 'log.txt').write_text('SECRET-LOG\n' + step_line(41, 1.0, 1.0) + '\n')
    (outside / 'metrics.jsonl').write_text(json.dumps({'step': 1, 'SECRET-METRIC': 1.0}) + '\n')
    run = make_run(tmp_path / 'out', 'run_a')
    for name in ('config.json', 'log.txt', 'metrics.jsonl'):
        os.remove(os.path.join(run, name))
        os.symlink(str(outside / name), os.path.join(run, name))
    client = client_for(tmp_path / 'out')
    listing = client.get('/api/runs')
    detail = client.get('/api/runs/run_a')
    losses = client.get('/api/runs/run_a/losses')
    for response in (listing, detail, losses):
        assert response.status_code == 200
        assert b'SECRET' not in response.data, response.data
    assert listing.get_json()['runs'][0]['last_step'] is None
    data = detail.get_json()
    assert data['config'] is None and 'outside' in data['config_problem']
    assert data['log_tail'] == [] and data['metrics']['count'] == 0 and data['files'] == []
    assert losses.get_json()['steps'] == []
    for name in ('config.json', 'log.txt', 'metrics.jsonl'):
        assert client.get('/files/run_a/' + name).status_code == 404


def test_deeply_nested_json_reports_that_run_and_lists_the_others(tmp_path):
    make_run(tmp_path / 'out', 'good')
    bad = make_run(tmp_path / 'out', 'nested')
    with open(os.path.join(bad, 'config.json'), 'w') as f:
        f.write('[' * 100000 + ']' * 100000)
    with open(os.path.join(bad, 'metrics.jsonl'), 'a') as f:
        f.write('{"step": 5, "x": ' + '[' * 100000 + ']' * 100000 + '}\n')
    deep = make_run(tmp_path / 'out', 'deep')  # parses, but deeper than the page walks
    with open(os.path.join(deep, 'config.json'), 'w') as f:
        f.write('{"a": ' + '[' * 500 + ']' * 500 + '}')
    client = client_for(tmp_path / 'out')
    response = client.get('/api/runs')
    assert response.status_code == 200
    runs = {r['name']: r for r in response.get_json()['runs']}
    assert sorted(runs) == ['deep', 'good', 'nested']
    assert runs['good']['config_problem'] is None and runs['good']['dataset'] == 'mnist'
    for name in ('nested', 'deep'):
        assert 'nests lists or objects' in runs[name]['config_problem']
        detail = client.get('/api/runs/' + name)
        assert detail.status_code == 200 and 'nests lists' in detail.get_json()['config_problem']
    assert client.get('/api/runs/nested').get_json()['metrics']['count'] == 2  # the nested row left out


def test_a_failing_run_is_listed_as_broken(tmp_path, monkeypatch):
    make_run(tmp_path / 'out', 'good')
    make_run(tmp_path / 'out', 'bad')
    client = client_for(tmp_path / 'out')
    reader = client.application.config['RUN_READER']
    summary = reader.summary

    def failing(name, run_dir):
        if name == 'bad':
            raise RecursionError('maximum recursion depth exceeded')
        return summary(name, run_dir)
    monkeypatch.setattr(reader, 'summary', failing)
    response = client.get('/api/runs')
    assert response.status_code == 200
    runs = {r['name']: r for r in response.get_json()['runs']}
    assert runs['bad']['broken'] and 'cannot read this run' in runs['bad']['config_problem']
    assert runs['good']['last_step'] == 5
    assert client.get('/api/runs/bad').status_code == 200


@needs_posix
def test_fifos_and_devices_in_a_run_never_block_a_request(tmp_path):
    run = make_run(tmp_path / 'out', 'run_a')
    fifos = []
    for rel in ('config.json', 'log.txt', 'metrics.jsonl', os.path.join('samples', 'train_00000009.png')):
        path = os.path.join(run, rel)
        if os.path.exists(path):
            os.remove(path)
        os.mkfifo(path)
        fifos.append(path)
    os.symlink('/dev/zero', os.path.join(run, 'generated', 'gen_99999.png'))
    client = client_for(tmp_path / 'out')
    results = {}

    def requests():
        for url in ('/api/runs', '/api/runs/run_a', '/api/runs/run_a/losses', '/files/run_a/log.txt',
                    '/files/run_a/samples/train_00000009.png', '/files/run_a/generated/gen_99999.png'):
            results[url] = client.get(url).status_code

    before = threading.active_count()
    thread = threading.Thread(target=requests, daemon=True)
    thread.start()
    thread.join(30)
    hung = thread.is_alive()
    for path in fifos:  # releases a reader blocked on a FIFO, should one be
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    thread.join(5)
    assert not hung, 'a request blocked on a FIFO (answered: %s)' % results
    assert threading.active_count() == before
    assert results['/api/runs'] == 200 and results['/api/runs/run_a'] == 200
    assert results['/api/runs/run_a/losses'] == 200
    assert results['/files/run_a/log.txt'] == 404 and results['/files/run_a/samples/train_00000009.png'] == 404
    assert results['/files/run_a/generated/gen_99999.png'] == 404
    detail = client.get('/api/runs/run_a').get_json()
    assert 'not a regular file' in detail['config_problem'] and detail['files'] == []


def test_a_folder_of_100000_images_costs_little_per_poll(tmp_path):
    run = make_run(tmp_path / 'out', 'big', generated=2)
    generated = os.path.join(run, 'generated')
    for i in range(100000):
        os.mknod(os.path.join(generated, 'gen_%06d.png' % (i + 10)))  # an empty file
    old = time.time() - 600
    os.utime(generated, (old, old))  # a finished --generate
    client = client_for(tmp_path / 'out')
    first = client.get('/api/runs/big').get_json()
    assert first['generated_count'] == 100002 and len(first['generated']) == webapp.MAX_GALLERY
    costs = []
    for _ in range(3):
        start = time.process_time()
        detail = client.get('/api/runs/big').get_json()
        listing = client.get('/api/runs').get_json()
        costs.append(time.process_time() - start)
    assert detail['generated'][:2] == ['generated/gen_00000.png', 'generated/gen_00001.png']
    assert listing['runs'][0]['name'] == 'big'
    assert min(costs) < 0.25, 'a poll of a 100,000-file run took %.2f s of CPU' % min(costs)


def test_images_written_by_rename_show_at_the_next_poll(tmp_path):
    """utils.save_image writes a temporary file, then renames it: the rename changes the folder, so the
    cached listing is read again even when the folder's time is older than RESCAN_SECONDS."""
    run = make_run(tmp_path / 'out', 'run_a')
    samples = os.path.join(run, 'samples')
    os.utime(samples, (time.time() - 600,) * 2)
    client = client_for(tmp_path / 'out')
    assert [t['step'] for t in client.get('/api/runs/run_a').get_json()['timeline']] == [0, 2, 4]
    utils.save_image(os.path.join(samples, 'train_00000006.png'), np.zeros((28, 28), np.uint8))
    os.utime(samples, (time.time() - 500,) * 2)
    assert [t['step'] for t in client.get('/api/runs/run_a').get_json()['timeline']] == [0, 2, 4, 6]
