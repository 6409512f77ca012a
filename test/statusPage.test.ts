/**
 * The status page at `/` in a real headless browser (Debian's chromium driven by playwright-core):
 * it shows the live step, the loss curve, the workers and the newest sample grid from
 * --sample-every, refreshes by itself, and loads nothing from anywhere but the coordinator.
 * Also `ddpm inspect`, the other way to look at a run from outside.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { Browser, chromium } from 'playwright-core';
import { DDPM_BIN, eventually, freePort, killAll, startDdpm } from './helpers/cli';
import { CheckpointStore } from '../src/checkpoint/store';
import { unetParamSpecs, parameterCount } from '../src/model/paramSpecs';
import { FIXTURE_CONFIG, fixtureState } from './helpers/checkpointFixture';
import type { StatusJson } from '../src/metrics/status';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];
const TINY = ['--preset', 'tiny', '--backend', 'cpu', '--batch-size', '8', '--unit-size', '2', '--log-every', '60', '--steps', '10000'];

let root: string;
let browser: Browser | undefined;
beforeAll(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-status-')); });
afterEach(async () => {
  await browser?.close();
  browser = undefined;
  killAll();
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));


describe('the status page of a training run with --sample-every 2', () => {
  it('renders the live step, loss curve, worker table and newest sample grid, refreshing by itself, all from the coordinator', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}/`;
    const dir = path.join(root, 'run');
    const p = startDdpm(['train', ...TINY, '--workers', '0', '--checkpoint-dir', dir, '--metrics-port', String(port),
      '--sample-every', '2', '--sample-n', '4', '--sample-steps', '2']);
    const status = await eventually(async () => {
      const s = await (await fetch(`${base}status.json`, { signal: AbortSignal.timeout(5000) })).json() as StatusJson;
      return s.sampleStep !== null ? s : undefined;
    }, 90_000, 'the first sample grid', p.output);
    expect(fs.existsSync(path.join(dir, 'samples', `step-${String(status.sampleStep).padStart(8, '0')}.png`))).toBe(true);
    const png = Buffer.from(await (await fetch(`${base}samples/latest.png`)).arrayBuffer());
    expect(png.subarray(1, 4).toString()).toBe('PNG');

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(base, { timeout: 30_000 });

    await page.waitForFunction('/^\\d+ \\/ 10000$/.test(document.getElementById("step").textContent)', null, { timeout: 15_000 });
    const shownStep = parseInt((await page.textContent('#step')) ?? '', 10);
    expect(shownStep).toBeGreaterThanOrEqual(status.step);
    // The browser decoded the grid the coordinator serves: its width is the PNG's (IHDR bytes 16..19).
    // Read in the same evaluation that sees it loaded: with a grid every 2 steps the page may swap
    // in a newer one (not yet decoded, width 0) between two evaluations.
    const decoded = await page.waitForFunction('(() => { const i = document.getElementById("grid"); return !i.hidden && i.complete && i.naturalWidth > 0 && i.naturalWidth; })()', null, { timeout: 15_000 });
    expect(await decoded.jsonValue()).toBe(png.readUInt32BE(16));
    expect(await page.textContent('#workers')).toContain('in-process');
    expect(Number(await page.textContent('#loss'))).toBeGreaterThan(0);
    // No reload: the page's own polling of /status.json moves the step on.
    await page.waitForFunction(`parseInt(document.getElementById("step").textContent, 10) > ${shownStep}`, null, { timeout: 30_000 });
    expect(await page.evaluate('document.querySelector("#curve polyline").getAttribute("points").split(" ").length')).toBeGreaterThanOrEqual(2);
    expect(requests.length).toBeGreaterThanOrEqual(3);
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
  }, 180_000);
});

describe('ddpm inspect', () => {
  function saveFixture(name: string): string {
    const store = new CheckpointStore(path.join(root, name), unetParamSpecs(FIXTURE_CONFIG.model), () => undefined);
    return store.save({ config: FIXTURE_CONFIG, state: fixtureState(42, parameterCount(FIXTURE_CONFIG.model)), loss: 0.125, dataCursor: 336 });
  }

  const inspect = (dir: string) => spawnSync(process.execPath, [DDPM_BIN, 'inspect', dir], { encoding: 'utf8', timeout: 60_000 });

  it('prints the step, loss, parameter count and config of a run\'s latest checkpoint after checking its checksums', () => {
    saveFixture('good');
    const r = inspect(path.join(root, 'good'));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('step:       42\n');
    expect(r.stdout).toContain('loss:       0.125000\n');
    expect(r.stdout).toContain(`parameters: ${parameterCount(FIXTURE_CONFIG.model)}\n`);
    expect(r.stdout).toMatch(/checksums: {2}ok \(\d+ files\)/);
    expect(r.stdout).toContain('"batchSize": 8');
  });

  it('exits 2 with one line naming the file when a checksum does not match', () => {
    const dir = saveFixture('corrupt');
    const file = path.join(dir, 'ema.bin');
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const r = inspect(dir);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`ddpm: error: ${file}: checksum mismatch (corrupt)\n`);
  });
});
