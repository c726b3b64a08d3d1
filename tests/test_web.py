"""Unit tests of web/app.py: log parsing, run listing, loss JSON, safe file serving, missing folders."""
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_PATH = os.path.join(REPO, 'web', 'app.py')


def load_web_app():
    """Imports web/app.py as a module (web/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location('dcgan_web_app', APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


webapp = load_web_app()

LINE = '[%8d Epoch:[%2d/%2d] [%4d/%4d] time: %4.4f, d_loss: %.8f, g_loss: %.8f'


def step_line(step, d_loss, g_loss, epoch=0, epochs=25, batches=1093, seconds=None):
    """One per-step log line in main.py's exact printf format."""
    seconds = 0.25 * step if seconds is None else seconds
    return LINE % (step, epoch, epochs, step % batches, batches, seconds, d_loss, g_loss)


def write_grid(path, size=28, cells=4, seed=0):
    """Writes a small grey sample grid PNG (cells x cells images of size x size)."""
    rng = np.random.RandomState(seed)
    pixels = (rng.rand(size * cells, size * cells) * 255).astype(np.uint8)
    Image.fromarray(pixels, 'L').save(path)


def make_run(out_dir, name='run_a', steps=(0, 1, 2, 3, 4, 5), sample_every=2, config=None, metrics=True,
             generated=2, visualize=True):
    """Writes a synthetic run folder in main.py's layout; returns its path."""
    run = os.path.join(str(out_dir), name)
    for sub in ('checkpoint', 'samples', 'logs', 'generated', 'visualize'):
        os.makedirs(os.path.join(run, sub), exist_ok=True)
    cfg = {'dataset': 'mnist', 'batch_size': 16, 'epoch': 25, 'learning_rate': 0.0002, 'beta1': 0.5,
           'input_height': 28, 'output_height': 28, 'output_width': 28, 'crop': False, 'z_dim': 100,
           'z_dist': 'uniform_signed', 'g_steps': 2, 'train_steps': 6, 'seed': 0, 'device': 'cpu',
           'precision_mode': 'fp32', 'tf_version': '2.16.1', 'run_dir': run}
    cfg.update(config or {})
    with open(os.path.join(run, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    with open(os.path.join(run, 'log.txt'), 'w') as f:
        f.write('Loading mnist from data/mnist\n')
        for step in steps:
            f.write(step_line(step, 1.3 - 0.01 * step, 0.7 + 0.02 * step) + '\n')
            if step % sample_every == 0:
                write_grid(os.path.join(run, 'samples', 'train_%08d.png' % step), seed=step)
                f.write('Sample saved: samples/train_%08d.png\n' % step)
    write_grid(os.path.join(run, 'samples', 'reals.png'), seed=99)
    with open(os.path.join(run, 'checkpoint', 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "model.b64-5"\n')
    open(os.path.join(run, 'checkpoint', 'model.b64-5.index'), 'wb').close()
    for i in range(generated):
        write_grid(os.path.join(run, 'generated', 'gen_%05d.png' % i), cells=1, seed=i)
    if visualize:
        write_grid(os.path.join(run, 'visualize', 'test_arange_0.png'), seed=7)
        frames = [Image.fromarray(np.full((28, 28), v, np.uint8), 'L') for v in (0, 128, 255)]
        frames[0].save(os.path.join(run, 'visualize', 'walk.gif'), save_all=True, append_images=frames[1:])
    if metrics:
        with open(os.path.join(run, 'metrics.jsonl'), 'w') as f:
            f.write(json.dumps({'step': 2, 'fd': 20.5, 'label_accuracy': 0.5}) + '\n')
            f.write(json.dumps({'step': 4, 'fd': 12.25, 'label_accuracy': 0.75}) + '\n')
    return run


@pytest.fixture
def out_dir(tmp_path):
    out = tmp_path / 'out'
    make_run(out, 'run_a')
    return str(out)


def client_for(out_dir, **kwargs):
    """A test client of the app over out_dir (the client keeps the app alive; Flask 2.2 holds it weakly)."""
    app = webapp.create_app(str(out_dir), **kwargs)
    client = app.test_client()
    client.app_ref = app
    return client


@pytest.fixture
def client(out_dir):
    return client_for(out_dir)


# ------------------------------------------------------------------------------------- pure helpers

def test_parse_log_line_reads_the_exact_format():
    point = webapp.steplog.parse_line(
        '[      12 Epoch:[ 0/25] [  12/1093] time: 4.1234, d_loss: 1.38629436, g_loss: 0.69314718')
    assert point == {'step': 12, 'epoch': 0, 'epochs': 25, 'batch': 12, 'batches': 1093, 'time': 4.1234,
                     'd_loss': 1.38629436, 'g_loss': 0.69314718}
    wide = webapp.steplog.parse_line(step_line(123456789, 0.5, 2.0, epoch=100, epochs=200, batches=99999))
    assert wide['step'] == 123456789 and wide['epoch'] == 100 and wide['batches'] == 99999


def test_parse_log_line_other_lines_and_nan():
    assert webapp.steplog.parse_line('Loading mnist from data/mnist') is None
    assert webapp.steplog.parse_line('') is None
    assert webapp.steplog.parse_line('[       1 Epoch:[ 0/25] [   1/1093] time: 0.1, d_loss: 1.0') is None
    assert webapp.steplog.parse_line('[       1 Epoch:[ 0/25] [   1/1093] time: 0.1, d_loss: x, g_loss: 1') is None
    point = webapp.steplog.parse_line('[       3 Epoch:[ 0/25] [   3/1093] time: 0.1000, d_loss: nan, g_loss: inf')
    assert math.isnan(point['d_loss']) and point['g_loss'] == float('inf')
    prefixed = webapp.steplog.parse_line('INFO ' + step_line(7, 1.0, 2.0))
    assert prefixed['step'] == 7


def test_log_points_keep_the_latest_lines_after_a_restart(tmp_path):
    text = '\n'.join([step_line(s, 1.0, 1.0) for s in (0, 1, 2, 3)] + ['resuming'] +
                      [step_line(s, 2.0, 2.0) for s in (2, 3, 4)]) + '\n'
    (tmp_path / 'log.txt').write_text(text)
    points = webapp.LogCache().points(str(tmp_path / 'log.txt'))
    assert [p['step'] for p in points] == [0, 1, 2, 3, 4]
    assert [p['d_loss'] for p in points] == [1.0, 1.0, 2.0, 2.0, 2.0]


def test_split_complete_lines_leaves_a_partial_line():
    lines, used = webapp.split_complete_lines(b'a\nb\nhalf')
    assert lines == ['a', 'b'] and used == 4
    assert webapp.split_complete_lines(b'no newline yet') == ([], 0)


def test_loss_series_since_reset_nonfinite_and_thinning():
    points = [webapp.steplog.parse_line(step_line(s, 1.0 + s, 2.0)) for s in range(10)]
    points[3]['g_loss'] = float('nan')
    full = webapp.loss_series(points)
    assert full['steps'] == list(range(10)) and full['last_step'] == 9 and full['nonfinite'] == 1
    assert full['g_loss'][3] is None and full['d_loss'][3] == 4.0 and not full['reset']
    json.dumps(full, allow_nan=False)
    later = webapp.loss_series(points, since=6)
    assert later['steps'] == [7, 8, 9] and not later['reset']
    assert webapp.loss_series(points, since=50)['reset']
    thinned = webapp.loss_series(points, max_points=4)
    assert len(thinned['steps']) <= 5 and thinned['steps'][0] == 0 and thinned['steps'][-1] == 9
    assert webapp.loss_series([])['steps'] == [] and webapp.loss_series([])['last_step'] is None


def test_metrics_summary_skips_bad_lines():
    rows = webapp.parse_metrics_text('{"step": 1, "fd": 3.0}\nnot json\n\n{"step": 2, "fd": NaN, "acc": 1}\n{"ste')
    summary = webapp.metrics_summary(rows)
    assert summary['count'] == 2 and summary['columns'] == ['step', 'fd', 'acc']
    assert summary['latest'] == {'step': 2, 'fd': 'nan', 'acc': 1}


def test_is_inside_and_host_names(tmp_path):
    assert webapp.is_inside(str(tmp_path / 'a' / 'b'), str(tmp_path / 'a'))
    assert not webapp.is_inside(str(tmp_path / 'ab'), str(tmp_path / 'a'))
    assert not webapp.is_inside(str(tmp_path / 'a' / '..' / 'b'), str(tmp_path / 'a'))
    assert webapp.request_host_name('localhost:5000') == 'localhost'
    assert webapp.request_host_name('[::1]:5000') == '[::1]'
    assert webapp.request_host_name('evil.example') == 'evil.example'


def test_log_cache_reads_appended_lines_and_waits_for_complete_ones(tmp_path):
    path = str(tmp_path / 'log.txt')
    cache = webapp.LogCache()
    assert cache.points(path) == []
    with open(path, 'w') as f:
        f.write(step_line(0, 1.0, 1.0) + '\n' + step_line(1, 1.0, 1.0)[:40])
    assert [p['step'] for p in cache.points(path)] == [0]
    with open(path, 'a') as f:
        f.write(step_line(1, 1.0, 1.0)[40:] + '\n' + step_line(2, 1.0, 1.0) + '\n')
    assert [p['step'] for p in cache.points(path)] == [0, 1, 2]
    with open(path, 'w') as f:  # rewritten from scratch: shorter than what was read
        f.write(step_line(0, 5.0, 5.0) + '\n')
    assert [p['d_loss'] for p in cache.points(path)] == [5.0]


# ------------------------------------------------------------------------------------- the app

def test_index_page_is_local_only(client):
    response = client.get('/')
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'DCGAN runs' in html
    assert 'http://' not in html and 'https://' not in html and '//cdn' not in html
    assert "default-src 'none'" in response.headers['Content-Security-Policy']
    for asset in ('/static/app.js', '/static/style.css', '/static/favicon.svg',
                  '/static/vendor/uplot/uPlot-1.6.32.iife.min.js', '/static/vendor/uplot/uPlot-1.6.32.min.css'):
        assert asset in html
        assert client.get(asset).status_code == 200
    assert 'MIT License' in open(os.path.join(REPO, 'web', 'static', 'vendor', 'uplot', 'LICENSE')).read()
    css = client.get('/static/style.css').get_data(as_text=True)
    assert 'image-rendering: pixelated' in css


def test_runs_listing(client, out_dir):
    make_run(out_dir, 'run_b', steps=(0, 1, 2), config={'dataset': 'celebA', 'device': 'gpu',
                                                         'precision_mode': 'allow_mix_precision'})
    os.makedirs(os.path.join(out_dir, 'not_a_run'))
    os.makedirs(os.path.join(out_dir, '.hidden_run', 'samples'))
    data = client.get('/api/runs').get_json()
    assert data['exists'] and data['problem'] is None
    assert sorted(r['name'] for r in data['runs']) == ['run_a', 'run_b']
    assert data['ignored'] == ['not_a_run']
    run = {r['name']: r for r in data['runs']}['run_a']
    assert run['dataset'] == 'mnist' and run['device'] == 'cpu' and run['precision_mode'] == 'fp32'
    assert run['last_step'] == 5 and run['epoch'] == 0 and run['epochs'] == 25
    assert abs(run['d_loss'] - 1.25) < 1e-6 and abs(run['g_loss'] - 0.8) < 1e-6
    assert run['n_samples'] == 3 and run['last_sample_step'] == 4 and run['has_checkpoint']
    assert run['live'] is True  # just written
    assert {'key': 'batch_size', 'value': 16} in run['settings']
    assert run['metrics_latest'] == {'step': 4, 'fd': 12.25, 'label_accuracy': 0.75}
    other = {r['name']: r for r in data['runs']}['run_b']
    assert other['dataset'] == 'celebA' and other['precision_mode'] == 'allow_mix_precision'


def test_live_flag_follows_modification_times(client, out_dir):
    run = os.path.join(out_dir, 'run_a')
    old = time.time() - 3600
    for folder, _, files in os.walk(run):
        for name in files:
            os.utime(os.path.join(folder, name), (old, old))
    listed = client.get('/api/runs').get_json()['runs'][0]
    assert listed['live'] is False and listed['age'] >= 3599 and listed['age_text'] == '60 min'
    with open(os.path.join(run, 'log.txt'), 'a') as f:
        f.write(step_line(6, 1.0, 1.0) + '\n')
    listed = client.get('/api/runs').get_json()['runs'][0]
    assert listed['live'] is True and listed['last_step'] == 6


def test_run_detail(client):
    data = client.get('/api/runs/run_a').get_json()
    assert [item['step'] for item in data['timeline']] == [0, 2, 4]
    assert data['timeline'][0]['file'] == 'samples/train_00000000.png'
    assert data['reals']['file'] == 'samples/reals.png'
    assert data['generated'] == ['generated/gen_00000.png', 'generated/gen_00001.png']
    assert data['visualize'] == ['visualize/test_arange_0.png', 'visualize/walk.gif']
    assert data['config']['z_dim'] == 100 and data['config_problem'] is None
    assert data['metrics']['count'] == 2 and data['metrics']['columns'][0] == 'step'
    assert data['log_tail'][0] == 'Loading mnist from data/mnist'
    assert data['files'] == ['log.txt', 'config.json', 'metrics.jsonl']
    for item in data['timeline'] + [data['reals']]:
        assert client.get('/files/run_a/' + item['file']).status_code == 200
    assert client.get('/api/runs/nope').status_code == 404


def test_losses_json_from_a_log(client, out_dir):
    with open(os.path.join(out_dir, 'run_a', 'log.txt'), 'a') as f:
        f.write('[       6 Epoch:[ 0/25] [   6/1093] time: 1.5000, d_loss: nan, g_loss: 0.50000000\n')
        f.write(step_line(7, 0.9, 0.4)[:30])  # being written
    response = client.get('/api/runs/run_a/losses')
    assert response.status_code == 200
    json.loads(response.get_data(as_text=True))  # strict JSON: no NaN
    data = response.get_json()
    assert data['steps'] == [0, 1, 2, 3, 4, 5, 6]
    assert data['d_loss'][6] is None and data['g_loss'][6] == 0.5 and data['nonfinite'] == 1
    assert abs(data['d_loss'][0] - 1.3) < 1e-9 and abs(data['g_loss'][5] - 0.8) < 1e-9
    assert client.get('/api/runs/run_a/losses?since=4').get_json()['steps'] == [5, 6]
    assert client.get('/api/runs/run_a/losses?since=99').get_json()['reset'] is True
    summary = client.get('/api/runs').get_json()['runs'][0]
    assert summary['d_loss'] == 'nan' and summary['last_step'] == 6
    assert client.get('/api/runs/nope/losses').status_code == 404


def test_real_files_are_served(client):
    response = client.get('/files/run_a/samples/train_00000002.png')
    assert response.status_code == 200 and response.mimetype == 'image/png'
    assert response.data.startswith(b'\x89PNG')
    assert client.get('/files/run_a/visualize/walk.gif').mimetype == 'image/gif'
    log = client.get('/files/run_a/log.txt')
    assert log.status_code == 200 and log.mimetype == 'text/plain' and b'd_loss' in log.data
    assert client.get('/files/run_a/config.json').status_code == 200


@pytest.mark.parametrize('url', [
    '/files/run_a/../../etc/passwd',
    '/files/run_a/samples/../config.json',
    '/files/run_a/samples/../../run_a/log.txt',
    '/files/run_a/%2e%2e/%2e%2e/etc/passwd',
    '/files/run_a/samples%2f..%2f..%2fsecret.txt',
    '/files/run_a/..%2fsecret.txt',
    '/files/run_a/%252e%252e/secret.txt',
    '/files/run_a/samples/..%5c..%5csecret.txt',
    '/files/run_a//etc/passwd',
    '/files/run_a/%2fetc%2fpasswd',
    '/files/..%2fsecret.txt/x',
    '/files/%2e%2e/secret.txt',
    '/files/run_a/samples/%00train_00000000.png',
    '/files/run_a/checkpoint/checkpoint',
    '/files/run_a/checkpoint/model.b64-5.index',
    '/files/run_a/samples/missing.png',
    '/files/run_a/generated/generated.npz',
    '/files/run_a/samples',
    '/files/run_a/',
    '/files/run_a/samples/.secret.png',
    '/files/nope/log.txt',
    '/api/runs/..',
    '/api/runs/%2e%2e/losses',
    '/static/../web/app.py',
    '/static/%2e%2e/app.py',
])
def test_traversal_attempts_get_404(client, out_dir, url):
    with open(os.path.join(os.path.dirname(out_dir), 'secret.txt'), 'w') as f:
        f.write('secret')
    with open(os.path.join(out_dir, 'run_a', 'samples', '.secret.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + b'0' * 20 + b'\x00\x00\x00\x00IEND\xaeB`\x82')
    response = client.get(url)
    assert response.status_code == 404, url
    assert b'secret' not in response.data and b'root:' not in response.data


def test_traversal_over_real_http(out_dir, tmp_path):
    """The same attempts sent byte for byte to Werkzeug's server (no client-side path clean-up)."""
    import http.client
    import threading
    from werkzeug.serving import make_server
    (tmp_path / 'secret.txt').write_text('secret')
    server = make_server('127.0.0.1', 0, webapp.create_app(out_dir), threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.daemon = True
    thread.start()
    try:
        def get(path):
            conn = http.client.HTTPConnection('127.0.0.1', server.server_port, timeout=10)
            conn.request('GET', path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body
        assert get('/files/run_a/log.txt')[0] == 200
        for path in ('/files/run_a/../../secret.txt', '/files/run_a/%2e%2e/%2e%2e/secret.txt',
                     '/files/run_a/..%2f..%2fsecret.txt', '/files/run_a/%2E%2E%2F%2E%2E%2Fsecret.txt',
                     '/files/run_a//' + str(tmp_path / 'secret.txt').lstrip('/'), '/files/%2e%2e/secret.txt',
                     '/files/run_a/samples/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt', '/static/..%2f..%2fsecret.txt',
                     '/files/run_a/samples/..%5c..%5c..%5csecret.txt'):
            status, body = get(path)
            assert status == 404 and b'secret' not in body, path
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not hasattr(os, 'symlink') or sys.platform == 'win32', reason='needs symlinks')
def test_symlinks_pointing_out_get_404(client, out_dir, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    write_grid(str(outside / 'leak.png'))
    (outside / 'log.txt').write_text('secret')
    os.makedirs(str(outside / 'samples'))
    samples = os.path.join(out_dir, 'run_a', 'samples')
    os.symlink(str(outside / 'leak.png'), os.path.join(samples, 'train_00000099.png'))
    os.symlink(str(outside), os.path.join(out_dir, 'linked_run'))
    os.symlink(str(outside), os.path.join(out_dir, 'run_a', 'visualize', 'sub'))
    assert client.get('/files/run_a/samples/train_00000099.png').status_code == 404
    assert client.get('/files/linked_run/log.txt').status_code == 404
    assert client.get('/api/runs/linked_run').status_code == 404
    assert client.get('/files/run_a/visualize/sub/leak.png').status_code == 404
    data = client.get('/api/runs').get_json()
    assert [r['name'] for r in data['runs']] == ['run_a'] and 'linked_run' in data['ignored']
    detail = client.get('/api/runs/run_a').get_json()
    assert 99 not in [item['step'] for item in detail['timeline']]
    # a symlink that stays inside the run is fine
    os.symlink(os.path.join(samples, 'train_00000004.png'), os.path.join(samples, 'train_00000006.png'))
    assert client.get('/files/run_a/samples/train_00000006.png').status_code == 200


def test_foreign_host_header_is_refused(client):
    assert client.get('/api/runs', headers={'Host': 'evil.example'}).status_code == 403
    assert client.get('/api/runs', headers={'Host': '127.0.0.1:5000'}).status_code == 200
    open_client = client_for(client.application.config['RUN_READER'].out_dir, loopback_only=False)
    assert open_client.get('/api/runs', headers={'Host': 'box.lan:5000'}).status_code == 200


def test_missing_empty_and_file_out_dir(tmp_path):
    missing = client_for(tmp_path / 'nowhere')
    data = missing.get('/api/runs').get_json()
    assert data['exists'] is False and data['runs'] == [] and 'does not exist yet' in data['problem']
    assert missing.get('/').status_code == 200
    assert missing.get('/files/x/log.txt').status_code == 404
    assert missing.get('/api/runs/x').status_code == 404
    (tmp_path / 'empty').mkdir()
    empty = client_for(tmp_path / 'empty')
    data = empty.get('/api/runs').get_json()
    assert data['exists'] and data['runs'] == [] and data['problem'] is None
    (tmp_path / 'afile').write_text('x')
    afile = client_for(tmp_path / 'afile')
    data = afile.get('/api/runs').get_json()
    assert 'not a folder' in data['problem']


def test_run_being_written(tmp_path):
    """A run with a broken config, a truncated log and images still under their temporary names still shows."""
    run = tmp_path / 'out' / 'fresh'
    (run / 'samples').mkdir(parents=True)
    (run / 'visualize').mkdir()
    (run / 'config.json').write_text('{"dataset": "mni')
    (run / 'log.txt').write_text(step_line(0, 1.0, 1.0) + '\n' + step_line(1, 1.0, 1.0)[:25])
    write_grid(str(run / 'samples' / 'train_00000000.png'))
    (run / 'samples' / 'train_00000001.png.tmp').write_bytes(b'\x89PNG')  # utils.save_image's, before its rename
    (run / 'visualize' / 'gif_z000.gif.tmp.gif').write_bytes(b'GIF8')  # utils.save_gif's
    client = client_for(tmp_path / 'out')
    listed = client.get('/api/runs').get_json()['runs']
    assert listed[0]['name'] == 'fresh' and listed[0]['last_step'] == 0 and listed[0]['dataset'] is None
    assert 'not valid JSON' in listed[0]['config_problem']
    detail = client.get('/api/runs/fresh').get_json()
    assert [item['step'] for item in detail['timeline']] == [0] and detail['visualize'] == []
    assert detail['reals'] is None and detail['generated'] == [] and detail['metrics']['count'] == 0
    assert client.get('/api/runs/fresh/losses').get_json()['steps'] == [0]
    (run / 'log.txt').unlink()
    (run / 'config.json').unlink()
    detail = client.get('/api/runs/fresh').get_json()
    assert detail['has_log'] is False and detail['last_step'] is None
    assert detail['config_problem'] == 'no config.json yet'
    assert client.get('/api/runs/fresh/losses').get_json()['steps'] == []


def test_generated_gallery_is_capped(tmp_path):
    make_run(tmp_path / 'out', 'big', generated=webapp.MAX_GALLERY + 5, visualize=False)
    client = client_for(tmp_path / 'out')
    detail = client.get('/api/runs/big').get_json()
    assert len(detail['generated']) == webapp.MAX_GALLERY and detail['generated_count'] == webapp.MAX_GALLERY + 5


# ------------------------------------------------------------------------------------- the command line

def test_starts_fast_without_tensorflow_and_serves(tmp_path):
    """`python web/app.py --port 0` prints its URL quickly, never imports TensorFlow, binds 127.0.0.1."""
    code = ('import runpy, sys; sys.argv = ["app.py", "--out_dir", %r, "--port", "0"]; '
            'import threading, os, time\n'
            'def check():\n'
            '    time.sleep(3); print("TF" if "tensorflow" in sys.modules else "NO_TF", flush=True); os._exit(0)\n'
            'threading.Thread(target=check, daemon=True).start()\n'
            'runpy.run_path(%r, run_name="__main__")\n') % (str(tmp_path / 'nowhere'), APP_PATH)
    start = time.time()
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        elapsed = time.time() - start
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = first + second + rest
    assert 'does not exist yet' in first, output
    assert second.startswith('Serving the runs in') and 'http://127.0.0.1:' in second, output
    assert elapsed < 5, 'took %.1f s to start' % elapsed
    assert 'NO_TF' in rest, output


def test_help_and_defaults():
    args = webapp.parse_args([])
    assert (args.out_dir, args.host, args.port) == ('./out', '127.0.0.1', 5000)
    result = subprocess.run([sys.executable, APP_PATH, '--help'], stdout=subprocess.PIPE, universal_newlines=True,
                            timeout=30)
    assert result.returncode == 0 and '--out_dir' in result.stdout and '0.0.0.0' in result.stdout
    source = open(APP_PATH).read()
    assert 'debug=True' not in source and 'import tensorflow' not in source
