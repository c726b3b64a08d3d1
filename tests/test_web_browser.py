"""End-to-end test of web/app.py in headless Chromium: a real short training run browsed through the page."""
import importlib.util
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import REPO, make_mnist, run_main
from test_web import make_run, step_line, write_grid

pytestmark = pytest.mark.slow  # a real browser over real training runs

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
APP = os.path.join(REPO, 'web', 'app.py')
ARTIFACTS = os.path.join(REPO, 'tests', 'artifacts')
WAIT_S = 20
D_COLOUR, G_COLOUR = '#2f6fdf', '#e0702b'  # the page's D and G lines, and its first run in the comparison


def unavailable(reason):
    """Fails with reason on CI (the browser test must run there), skips with it elsewhere."""
    message = ('browser test cannot run: %s (make test installs Debian\'s chromium and chromium-driver through '
               'tests/setup_browser.sh; run that as root)' % reason)
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)


def ensure_browser():
    """Checks that chromium, its driver and selenium are there; installing them is make test's setup."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            unavailable('%s is missing' % path)
    if importlib.util.find_spec('selenium') is None:
        unavailable('the selenium package is not installed (pip install -r requirements-test.txt)')


@pytest.fixture(scope='module')
def driver():
    """A headless Chromium driven through /usr/bin/chromedriver; selenium-manager never downloads anything."""
    ensure_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    saved = os.environ.get('SE_OFFLINE')
    os.environ['SE_OFFLINE'] = 'true'
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--no-first-run', '--user-data-dir=' + profile, '--window-size=1440,900'):
        options.add_argument(arg)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    try:
        browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as e:  # selenium raises several kinds here; report whichever it was
        shutil.rmtree(profile, ignore_errors=True)
        unavailable('chromium did not start through %s: %s' % (CHROMEDRIVER, e))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if saved is None:
            os.environ.pop('SE_OFFLINE', None)
        else:
            os.environ['SE_OFFLINE'] = saved


class Server(object):
    """`python web/app.py --out_dir OUT --port 0` in a subprocess; url is what it printed."""

    def __init__(self, out_dir):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.proc = subprocess.Popen([sys.executable, APP, '--out_dir', str(out_dir), '--host', '127.0.0.1',
                                      '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True, env=env)
        self.output = ''
        self.url = None
        lines = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in iter(self.proc.stdout.readline, '')])
        reader.daemon = True
        reader.start()
        deadline = time.time() + 15
        while self.url is None and time.time() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output += line
            match = re.search(r'(http://127\.0\.0\.1:\d+/)', line)
            if match:
                self.url = match.group(1)
        if self.url is None:
            self.stop()
            raise AssertionError('web/app.py did not print its URL:\n' + self.output)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(autouse=True)
def blank_page_after_each_test(request):
    """Leaves each test's page, whose server stops with the test, and drains the console log, so that the
    page's polling of a stopped server cannot count as a console error of the next test."""
    yield
    if 'driver' in request.fixturenames:
        browser = request.getfixturevalue('driver')
        browser.get('about:blank')
        browser.get_log('browser')


@pytest.fixture
def serve():
    """Starts app servers on free ports and stops them after the test."""
    servers = []

    def start(out_dir):
        server = Server(out_dir)
        servers.append(server)
        return server.url
    yield start
    for server in servers:
        server.stop()


def wait_for(browser, condition, what, timeout=WAIT_S):
    """Polls condition(browser) until it returns something truthy; fails naming `what` otherwise."""
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda b: condition(b))
    except TimeoutException:
        save_screenshot(browser, 'web_failure.png')
        raise AssertionError('timed out waiting for ' + what + '; screenshot in tests/artifacts/web_failure.png')


def save_screenshot(browser, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, name))


def image_loaded(browser, element_id):
    return browser.execute_script(
        'var i = document.getElementById(arguments[0]);'
        'return i && i.complete && !i.classList.contains("hidden") ? i.naturalWidth : 0;', element_id)


def chart_points(browser):
    return int(browser.find_element('id', 'loss-chart').get_attribute('data-points') or 0)


def line_pixels(browser, chart_id, colour):
    """How many pixels of the chart's canvas are drawn in colour ('#rrggbb', antialiased edges left out)."""
    return browser.execute_script(
        'var canvas = document.querySelector("#" + arguments[0] + " canvas"), hex = arguments[1];'
        'if (!canvas || !canvas.width) return 0;'
        'var want = [1, 3, 5].map(function (i) { return parseInt(hex.substr(i, 2), 16); });'
        'var px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data, n = 0;'
        'for (var i = 0; i < px.length; i += 4) {'
        '  if (px[i + 3] > 200 && Math.abs(px[i] - want[0]) + Math.abs(px[i + 1] - want[1]) +'
        '      Math.abs(px[i + 2] - want[2]) < 60) n++;'
        '}'
        'return n;', chart_id, colour)


def shown_step(browser):
    value = browser.find_element('id', 'step-label').get_attribute('data-step')
    return int(value) if value else None


def check_page_health(browser, url):
    """Everything the page loaded came from the app itself, and the console holds no errors."""
    resources = browser.execute_script(
        'return performance.getEntriesByType("resource").map(function (e) { return e.name; });')
    foreign = [name for name in resources if not name.startswith(url)]
    assert not foreign, 'page loaded resources from elsewhere: %s' % foreign
    severe = [entry['message'] for entry in browser.get_log('browser') if entry.get('level') == 'SEVERE']
    assert not severe, 'browser console errors: %s' % severe


def train_short_run(tmp_path):
    """Trains six steps on tiny MNIST through `python main.py` as a user types it; returns the run folder."""
    assert os.path.exists(os.path.join(REPO, 'main.py')), 'main.py is missing: the page needs a real run folder'
    make_mnist(tmp_path / 'data')
    result = run_main('--dataset', 'mnist', '--input_height=28', '--output_height=28', '--train',
                      '--train_steps', '6', '--sample_freq', '2', '--ckpt_freq', '3', '--batch_size', '16',
                      '--data_dir', tmp_path / 'data', '--out_dir', tmp_path / 'out', '--out_name', 'mnist_run')
    assert result.returncode == 0, result.stdout[-4000:]
    return tmp_path / 'out' / 'mnist_run'


def test_page_over_a_real_training_run(driver, serve, tmp_path):
    """Trains a few steps through main.py, then browses the run: list, timeline, images, loss chart."""
    run_dir = train_short_run(tmp_path)
    browse_run(driver, serve(tmp_path / 'out'), run_dir)


def browse_run(driver, url, run_dir):
    """Picks the run in the list, checks its images and loss chart, moves the timeline, saves screenshots."""
    name = os.path.basename(str(run_dir))
    samples = sorted(n for n in os.listdir(str(run_dir / 'samples')) if n.startswith('train_'))
    assert len(samples) >= 2, 'expected several sample grids, found %s' % samples
    driver.get(url)
    row_css = 'tr.run-row[data-run="%s"]' % name
    wait_for(driver, lambda b: b.find_elements('css selector', row_css), 'the run in the runs table')
    row_text = driver.find_element('css selector', row_css).text
    assert 'mnist' in row_text and ('live' in row_text or 'idle' in row_text), row_text
    wait_for(driver, lambda b: b.find_element('id', 'compare-chart').get_attribute('data-series-count') == '1' and
             name in b.find_element('id', 'compare-legend').text and line_pixels(b, 'compare-chart', D_COLOUR) > 20,
             'the run drawn in the comparison chart')
    save_screenshot(driver, 'web_runs.png')

    # Pick the run.
    driver.find_element('css selector', row_css).click()
    wait_for(driver, lambda b: image_loaded(b, 'fake-img') > 0, 'the newest sample grid to load')
    wait_for(driver, lambda b: image_loaded(b, 'reals-img') > 0, 'samples/reals.png to load')
    with open(str(run_dir / 'log.txt')) as f:
        logged = len(set(re.findall(r'^\[\s*(\d+) Epoch:', f.read(), re.M)))
    assert logged >= 2, 'log.txt has %d step lines' % logged
    wait_for(driver, lambda b: chart_points(b) == logged, 'one chart point per logged step (%d)' % logged)
    for label, colour in (('D', D_COLOUR), ('G', G_COLOUR)):
        wait_for(driver, lambda b: line_pixels(b, 'loss-chart', colour) > 20, 'the %s loss line drawn' % label)
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(driver).move_to_element(driver.find_element('css selector', '#loss-chart .u-over')).perform()
    values = lambda b: [e.text for e in b.find_elements('css selector', '#loss-legend .u-series .u-value')]
    wait_for(driver, lambda b: re.match(r'^\d+$', values(b)[0]) and all(re.match(r'^-?\d+\.\d{4}$', v) for v in values(b)[1:]),
             'the legend to show the step and the losses under the cursor')
    assert driver.execute_script(
        'return getComputedStyle(document.getElementById("fake-img")).imageRendering;') == 'pixelated'

    # Move the timeline back to the first grid, then step forward with the keyboard.
    from selenium.webdriver.common.keys import Keys
    steps = sorted(int(re.match(r'train_(\d+)\.png', n).group(1)) for n in samples)
    slider = driver.find_element('id', 'timeline-slider')
    assert int(slider.get_attribute('max')) == len(steps) - 1
    assert shown_step(driver) == steps[-1]
    newest_src = driver.find_element('id', 'fake-img').get_attribute('src')
    slider.send_keys(Keys.HOME)
    wait_for(driver, lambda b: shown_step(b) == steps[0], 'the timeline to show step %d' % steps[0])
    wait_for(driver, lambda b: b.find_element('id', 'fake-img').get_attribute('src') != newest_src and
             image_loaded(b, 'fake-img') > 0, 'the first sample grid to load')
    assert 'step %d' % steps[0] in driver.find_element('id', 'step-label').text
    slider.send_keys(Keys.ARROW_RIGHT)
    wait_for(driver, lambda b: shown_step(b) == steps[1] and image_loaded(b, 'fake-img') > 0,
             'the timeline to move to step %d' % steps[1])

    # Play runs through to the newest grid.
    driver.find_element('id', 'play-btn').click()
    wait_for(driver, lambda b: shown_step(b) == steps[-1] and image_loaded(b, 'fake-img') > 0, 'play to reach the end')

    # The flags table shows the saved config; every image on the page has loaded.
    flags = driver.find_element('id', 'config-table').text
    assert 'batch_size' in flags and 'train_steps' in flags
    broken = driver.execute_script(
        'return Array.from(document.images).filter(function (i) {'
        '  return !i.classList.contains("hidden") && i.getAttribute("src") && !(i.complete && i.naturalWidth > 0);'
        '}).map(function (i) { return i.src; });')
    assert not broken, 'images that did not load: %s' % broken
    check_page_health(driver, url)

    # Screenshots for a person to look at: what a laptop shows, and the whole page.
    driver.execute_script('window.scrollTo(0, 0);')
    save_screenshot(driver, 'web_run.png')
    height = driver.execute_script('return document.documentElement.scrollHeight;')
    driver.set_window_size(1440, min(max(900, height + 140), 3000))
    try:
        save_screenshot(driver, 'web_run_full.png')
    finally:
        driver.set_window_size(1440, 900)


def test_page_refreshes_while_a_run_trains(driver, serve, tmp_path):
    """New sample grids and loss points appear without a reload while a run folder is written."""
    out = tmp_path / 'out'
    run = make_run(out, 'live_run', steps=(0, 1, 2, 3, 4), metrics=False)
    url = serve(out)
    driver.get(url + '#/run/live_run')
    wait_for(driver, lambda b: shown_step(b) == 4 and image_loaded(b, 'fake-img') > 0, 'the run view')
    wait_for(driver, lambda b: chart_points(b) == 5, 'five loss points')
    driver.execute_script('window.__same_page = true;')

    with open(os.path.join(run, 'log.txt'), 'a') as f:
        for step in (5, 6):
            f.write(step_line(step, 1.0, 1.0) + '\n')
        f.write(step_line(7, 1.0, 1.0)[:20])  # a line still being written
    write_grid(os.path.join(run, 'samples', 'train_00000006.png'), seed=6)
    wait_for(driver, lambda b: shown_step(b) == 6 and image_loaded(b, 'fake-img') > 0, 'the new sample grid')
    wait_for(driver, lambda b: chart_points(b) == 7, 'the new loss points')
    assert driver.execute_script('return window.__same_page === true;'), 'the page reloaded'
    assert 'live' in driver.find_element('id', 'run-badge').text


def test_page_over_missing_and_empty_folders(driver, serve, tmp_path):
    """The page says that out_dir does not exist, then that it has no runs, then lists the first run."""
    out = tmp_path / 'not_yet'
    url = serve(out)
    driver.get(url)
    wait_for(driver, lambda b: 'does not exist yet' in b.find_element('id', 'list-message').text, 'the missing note')
    out.mkdir()
    driver.refresh()
    wait_for(driver, lambda b: 'No runs in' in b.find_element('id', 'list-message').text, 'the empty note')
    make_run(out, 'first', steps=(0, 1, 2))
    wait_for(driver, lambda b: b.find_elements('css selector', 'tr.run-row[data-run="first"]'), 'the new run',
             timeout=WAIT_S)
    check_page_health(driver, url)
