// The playground played in a real browser: Debian's headless Chromium driven
// by playwright-core (never a downloaded browser). Three people, each in
// their own browser context, play a whole coffee run through the page as
// they would in Slack.
//
// Run by scripts/test after the cargo tests, with:
//   COFFEEBUDDY_LOCAL  the coffeebuddy-local binary (started here, PORT free)
//   DATABASE_URL       a database it may migrate and use (a fresh one)
// or PLAYGROUND_URL=http://127.0.0.1:PORT to drive a server already running
// (e.g. scripts/dev). Screenshots go to SCREENSHOT_DIR (default
// tests/browser/screenshots/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const shots = process.env.SCREENSHOT_DIR || join(here, 'screenshots');
const WAIT = 15_000;
let server;
let serverLog = '';
let base = process.env.PLAYGROUND_URL;
let browser; // a persistent context on a fresh profile
let profile;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${url}/health/ready`);
      if (r.ok) return;
    } catch { /* not yet */ }
    if (server && server.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`coffeebuddy-local did not become ready:\n${serverLog}`);
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  if (!base) {
    const binary = process.env.COFFEEBUDDY_LOCAL;
    assert.ok(binary, 'set COFFEEBUDDY_LOCAL (and DATABASE_URL), or PLAYGROUND_URL');
    assert.ok(process.env.DATABASE_URL, 'set DATABASE_URL');
    const port = await freePort();
    const env = { ...process.env, PORT: String(port), SERVICE_ENV: 'dev', LOG_FORMAT: 'pretty',
      LOG_LEVEL: 'warn,coffeebuddy_local=info', SLACK_SIGNING_SECRET: 'browser-test-secret',
      SLACK_BOT_TOKEN: 'xoxb-browser-test', TICK_SECONDS: '2' };
    delete env.SLACK_API_BASE_URL;
    delete env.KAFKA_BROKERS;
    server = spawn(binary, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout.on('data', (d) => { serverLog += d; });
    server.stderr.on('data', (d) => { serverLog += d; });
    base = `http://127.0.0.1:${port}`;
    await waitReady(base);
  }
  profile = mkdtempSync(join(tmpdir(), 'coffeebuddy-chromium-'));
  // A fresh profile (--user-data-dir) for every run; Playwright passes it.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
});

/** A person in their own tab, looking at #coffee (`?as=` says who). */
async function person(id) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${base}/playground?as=${id}&c=C0COFFEE`);
  await page.locator('#connection', { hasText: 'Live' }).waitFor({ timeout: WAIT });
  return { page, errors };
}

const messages = (page) => page.locator('#messages > li.message');
const runMessage = (page) => messages(page).filter({ hasText: 'started a coffee run' });

async function say(page, text) {
  const box = page.getByLabel(/^Message /);
  await box.fill(text);
  await box.press('Enter');
  await page.waitForFunction(() => document.getElementById('composer-input').value === '', null, { timeout: WAIT });
}

async function order(page, text, { tick = [] } = {}) {
  await runMessage(page).getByRole('button', { name: 'Order' }).click();
  const modal = page.getByRole('dialog', { name: 'Coffee order' });
  await modal.waitFor({ timeout: WAIT });
  const input = modal.getByLabel(/Your order/);
  await input.fill(text);
  for (const label of tick) await modal.getByLabel(label).check();
  await modal.getByRole('button', { name: 'Order', exact: true }).click();
  return modal;
}

async function openDm(page) {
  await page.getByRole('navigation', { name: 'Conversations' }).getByRole('button', { name: /^CoffeeBuddy \(direct messages\)/ }).click();
  await page.locator('#conversation-title', { hasText: 'direct messages' }).waitFor();
}

test('three people play a whole coffee run in the playground', async () => {
  const alice = await person('U0ALICE');
  const bob = await person('U0BOB');
  const carol = await person('U0CAROL');

  // Alice starts a run with a pickup and a note; everyone sees it appear.
  await say(alice.page, '/coffee in 15m Blue Bottle');
  for (const p of [alice, bob, carol]) {
    await runMessage(p.page).waitFor({ timeout: WAIT });
    await assert.doesNotReject(runMessage(p.page).getByText('Blue Bottle').waitFor({ timeout: WAIT }));
  }
  await alice.page.screenshot({ path: join(shots, '01-run-started.png') });

  // Bob orders; his first try is too long and refused inline, then corrected.
  const modal = await order(bob.page, 'a very large flat white '.repeat(8), { tick: ['Save as my usual'] });
  await modal.locator('.error').waitFor({ timeout: WAIT });
  assert.match(await modal.locator('.error').innerText(), /150 characters/);
  await bob.page.screenshot({ path: join(shots, '02-order-refused-for-length.png') });
  await modal.getByLabel(/Your order/).fill('flat white, oat milk');
  await modal.getByRole('button', { name: 'Order', exact: true }).click();
  await modal.waitFor({ state: 'hidden', timeout: WAIT });

  // Carol and Alice order too.
  const carolModal = await order(carol.page, 'cortado <!channel>');
  await carolModal.waitFor({ state: 'hidden', timeout: WAIT });
  const aliceModal = await order(alice.page, 'double espresso');
  await aliceModal.waitFor({ state: 'hidden', timeout: WAIT });
  await runMessage(alice.page).getByText('3 people have ordered').waitFor({ timeout: WAIT });
  // What Carol typed is shown as typed, never as a broadcast.
  await runMessage(alice.page).getByText('cortado <!channel>').waitFor({ timeout: WAIT });

  // Bob edits his order: the form is pre-filled with it.
  await runMessage(bob.page).getByRole('button', { name: 'Order' }).click();
  const edit = bob.page.getByRole('dialog', { name: 'Coffee order' });
  await edit.waitFor({ timeout: WAIT });
  assert.equal(await edit.getByLabel(/Your order/).inputValue(), 'flat white, oat milk');
  await edit.getByLabel(/Your order/).fill('flat white, oat milk, extra hot');
  await edit.getByRole('button', { name: 'Order', exact: true }).click();
  await edit.waitFor({ state: 'hidden', timeout: WAIT });
  await runMessage(carol.page).getByText('extra hot').waitFor({ timeout: WAIT });
  await runMessage(carol.page).getByText('3 people have ordered').waitFor({ timeout: WAIT });

  // Bob did not start the run: his close is refused, privately.
  await runMessage(bob.page).getByRole('button', { name: 'Close run' }).click();
  const refusal = bob.page.locator('#messages > li.message.ephemeral', { hasText: 'can close it' });
  await refusal.waitFor({ timeout: WAIT });
  await assert.doesNotReject(refusal.getByText('Only visible to you').waitFor());
  await bob.page.screenshot({ path: join(shots, '03-close-refused.png') });
  assert.equal(await alice.page.locator('#messages > li.message', { hasText: 'can close it' }).count(), 0,
    'the refusal is only visible to Bob');

  // Alice closes: the summary names the runner, in everyone's channel.
  await runMessage(alice.page).getByRole('button', { name: 'Close run' }).click();
  for (const p of [alice, bob, carol]) {
    await messages(p.page).filter({ hasText: 'is getting the coffee' }).first().waitFor({ timeout: WAIT });
    await runMessage(p.page).getByText('Closed').waitFor({ timeout: WAIT });
    assert.equal(await runMessage(p.page).getByRole('button', { name: 'Order' }).count(), 0, 'no buttons once closed');
  }
  await alice.page.screenshot({ path: join(shots, '04-run-closed.png') });

  // Everyone's DMs: exactly one runner with every order, the others told who it is.
  let runners = 0;
  for (const [name, p] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    await openDm(p.page);
    await messages(p.page).first().waitFor({ timeout: WAIT });
    const text = await p.page.locator('#messages').innerText();
    if (/You're the runner/.test(text)) {
      runners += 1;
      for (const o of ['flat white, oat milk, extra hot', 'cortado <!channel>', 'double espresso']) {
        assert.ok(text.includes(o), `the runner's DM lists "${o}"`);
      }
    } else {
      assert.match(text, /is getting the coffee/);
    }
    await p.page.screenshot({ path: join(shots, `05-dm-${name}.png`) });
  }
  assert.equal(runners, 1, 'exactly one runner');

  // Anyone may ask for the channel's settings.
  await carol.page.getByRole('navigation', { name: 'Conversations' }).getByRole('button', { name: /^#coffee/ }).click();
  await say(carol.page, '/coffee-admin status');
  const status = carol.page.locator('#messages > li.message.ephemeral', { hasText: 'CoffeeBuddy in this channel' });
  await status.waitFor({ timeout: WAIT });
  await carol.page.screenshot({ path: join(shots, '06-admin-status.png') });

  for (const p of [alice, bob, carol]) assert.deepEqual(p.errors, [], 'no script errors on the page');
});
