// The browser test of `swarmctl lab ui` (issue #10), run by run.sh against a real lab: headless
// Chromium (Debian's, through playwright-core) opens the page and does what a person would —
// reads the picture, opens terminals, types commands — while the test reads the page's DOM and
// xterm's buffer. The tests run in order and share one browser page.
//
// Environment (run.sh sets it): SHOAL_UI_URL (the address `lab ui` printed), SHOAL_UI_PIDFILE
// (the running `lab ui`'s PID; rewritten when this test restarts it), SHOAL_UI_OUT (screenshots,
// logs, and ui-1.out: what `lab ui` printed), SHOAL_LAB_NAME, SHOAL_LAB_DIR,
// SHOAL_LAB_SWARMD_ARGS, SWARMCTL, CHROMIUM.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const URL0 = must('SHOAL_UI_URL');
const PIDFILE = must('SHOAL_UI_PIDFILE');
const OUT = process.env.SHOAL_UI_OUT || path.join(__dirname, 'out');
const LAB = must('SHOAL_LAB_NAME');
const LAB_DIR = must('SHOAL_LAB_DIR');
const SWARMCTL = must('SWARMCTL');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ORIGIN = new URL(URL0).origin;
const NODES = ['manager1', 'manager2', 'manager3', 'worker1', 'worker2'];

function must(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/ui/run.sh`);
  return v;
}

let ctx = null;
let page = null;
let userDataDir = null;
let restarted = null; // the `lab ui` this test started, if any
const problems = []; // CSP violations and uncaught page errors

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-ui-chromium-'));
  ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1400, height: 900 },
    timeout: 60_000,
  });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ORIGIN });
  page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(URL0, { waitUntil: 'load' });
});

after(async () => {
  if (page) {
    await page.screenshot({ path: path.join(OUT, 'last.png') }).catch(() => {});
  }
  if (ctx) await ctx.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  if (restarted && restarted.exitCode === null) {
    restarted.kill('SIGTERM');
  }
});

// --- helpers -----------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (async, returns a truthy value when done) every 200 ms for at most `ms`. */
async function waitFor(what, ms, fn) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(200);
  }
}

/** The open terminal tabs: [{id, node, status, cols, rows}]. */
function tabs() {
  return page.evaluate(() => window.__shoalTerms.map((t) => ({
    id: t.id, node: t.node, status: t.status, cols: t.term.cols, rows: t.term.rows,
  })));
}

/** A tab's screen and scrollback as lines, wrapped lines joined. */
function screen(id) {
  return page.evaluate((id) => {
    const t = window.__shoalTerms.find((x) => x.id === id);
    if (!t) return [];
    const b = t.term.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) {
      const l = b.getLine(i);
      if (!l) continue;
      const s = l.translateToString(true);
      if (l.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    return lines;
  }, id);
}

/** Clicks node's card: a new terminal tab; waits until its websocket is open and the prompt shows. */
async function openTab(node) {
  const before = (await tabs()).map((t) => t.id);
  await page.locator(`.node[data-node="${node}"]`).click();
  return newTab(node, before);
}

/**
 * Waits for a tab on `node` that is not in `before`, its websocket open and its prompt shown
 * (closing a tab before then kills a shell still reading its rc files).
 */
async function newTab(node, before) {
  const tab = await waitFor(`a new tab on ${node}`, 10_000, async () =>
    (await tabs()).find((t) => !before.includes(t.id) && t.node === node));
  await waitFor(`the websocket of tab ${tab.id}`, 10_000, async () =>
    (await tabs()).find((t) => t.id === tab.id && t.status === 'open'));
  await waitFor(`the prompt of ${node} in tab ${tab.id}`, 15_000, async () =>
    (await screen(tab.id)).some((l) => l.includes(`${LAB}/${node}`)));
  return tab.id;
}

let seq = 0;

/**
 * Types `cmd` into tab `id` with the keyboard, between two markers the shell prints, and
 * returns the lines between them once the second shows (at most `ms`).
 */
async function run(id, cmd, ms = 20_000) {
  await page.locator(`#tabs .tab[data-tab="${id}"]`).click();
  await page.locator(`.term[data-tab="${id}"]`).click();
  const n = ++seq;
  // The typed line shows `"<"B1">"`; only the output has `<B1>` alone on a line.
  const begin = `<B${n}>`;
  const end = `<E${n}>`;
  await page.keyboard.type(`echo "<"B${n}">"; ${cmd}; echo "<"E${n}">"`, { delay: 2 });
  await page.keyboard.press('Enter');
  return waitFor(`the output of \`${cmd}\` in tab ${id}`, ms, async () => {
    const lines = (await screen(id)).map((l) => l.trimEnd());
    const b = lines.lastIndexOf(begin);
    const e = lines.lastIndexOf(end);
    return b >= 0 && e > b ? lines.slice(b + 1, e) : null;
  });
}

/** Types a command and Enter into tab `id` without waiting for it. */
async function type(id, cmd) {
  await page.locator(`#tabs .tab[data-tab="${id}"]`).click();
  await page.locator(`.term[data-tab="${id}"]`).click();
  await page.keyboard.type(cmd, { delay: 2 });
  await page.keyboard.press('Enter');
}

const count = (sel) => page.locator(sel).count();

/** The empty terminal area's hint: whether it shows, and where. */
async function hint() {
  const loc = page.locator('#term-hint');
  const visible = await loc.isVisible();
  return { visible, box: visible ? await loc.locator('.big').boundingBox() : null };
}

/** A PNG's width and height, from its IHDR chunk (after checking the signature). */
function pngSize(buf) {
  assert.ok(buf.length > 24, `a PNG of ${buf.length} bytes`);
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'the PNG signature');
  assert.equal(buf.subarray(12, 16).toString('ascii'), 'IHDR');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function labFile() {
  return JSON.parse(fs.readFileSync(path.join(LAB_DIR, LAB, 'lab.json'), 'utf8'));
}

// --- the tests -----------------------------------------------------------------------------------

let main = null; // the first tab on manager1
let addresses = {};

test('the page lists five Ready nodes, one of them the leader', async () => {
  await waitFor('5 Ready nodes and one leader', 30_000, async () =>
    (await count('.node')) === 5 &&
    (await count('.node[data-state="ready"]')) === 5 &&
    (await count('.node[data-leader="true"]')) === 1);
  const names = await page.locator('.node').evaluateAll((els) => els.map((e) => e.dataset.node));
  assert.deepEqual([...names].sort(), NODES);
  const leader = page.locator('.node[data-leader="true"]');
  assert.equal(await leader.getAttribute('data-role'), 'manager');
  assert.equal(await leader.locator('.leader-star').count(), 1, 'the leader has its star');
  assert.equal(await count('.leader-star'), 1, 'one star');
  for (const n of NODES) {
    assert.equal(await page.locator(`.node[data-node="${n}"] .state-pill`).textContent(), 'Ready');
  }
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'connected');
  assert.equal(await page.locator('#lab-name').textContent(), LAB);
  addresses = Object.fromEntries(labFile().nodes.map((n) => [n.name, n.address]));
  for (const n of NODES) {
    assert.equal(await page.locator(`.node[data-node="${n}"] .node-addr`).textContent(), addresses[n]);
  }
});

test('before any terminal, the terminal area says how to open one', async () => {
  assert.equal(await count('#tabs .tab'), 0);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.view), 'live');
  const h = await hint();
  assert.ok(h.visible, 'the hint shows before any terminal opens');
  assert.match(await page.locator('#term-hint').innerText(), /Click a node to open a terminal on it/);
  assert.match(await page.locator('#term-hint').innerText(), /Tab\s.*Enter/);
  // In the lower part of the window (where the terminals go), centred, and large enough to read.
  const vp = page.viewportSize();
  assert.ok(h.box.y > vp.height * 0.5 && h.box.y + h.box.height < vp.height, JSON.stringify({ box: h.box, vp }));
  assert.ok(Math.abs(h.box.x + h.box.width / 2 - vp.width / 2) < 10, JSON.stringify({ box: h.box, vp }));
  assert.equal(await page.locator('#hint').isVisible(), false, 'one hint at a time');
  const px = await page.locator('#term-hint .big').evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  assert.ok(px >= 16, `the hint's font is ${px}px`);
  await page.screenshot({ path: path.join(OUT, 'no-terminal.png') });
});

test('a terminal on manager1 answers hostname and swarmctl node ls', async () => {
  main = await openTab('manager1');
  assert.equal((await hint()).visible, false, 'the hint goes once a tab is open');
  assert.equal(await page.locator('#hint').isVisible(), true, 'the copy/paste reminder stays');
  assert.equal(await count('#tabs .tab'), 1);
  assert.equal(await count('.term'), 1);
  assert.deepEqual(await run(main, 'hostname'), ['manager1']);
  assert.deepEqual(await run(main, 'echo "node=$SHOAL_LAB_NODE lab=$SHOAL_LAB"'), [`node=manager1 lab=${LAB}`]);
  const ls = await run(main, 'swarmctl node ls');
  assert.match(ls[0], /HOSTNAME\s+STATUS/);
  for (const n of NODES) {
    assert.ok(ls.some((l) => new RegExp(`\\b${n}\\s+Ready\\b`).test(l)), `${n} Ready in:\n${ls.join('\n')}`);
  }
  assert.equal(ls.filter((l) => /\bLeader\b/.test(l)).length, 1, ls.join('\n'));
});

test('stty size follows a change of the viewport', async () => {
  const t0 = (await tabs()).find((t) => t.id === main);
  assert.deepEqual(await run(main, 'stty size'), [`${t0.rows} ${t0.cols}`]);
  await page.setViewportSize({ width: 1000, height: 700 });
  const t1 = await waitFor('the terminal to refit', 10_000, async () => {
    const t = (await tabs()).find((x) => x.id === main);
    return t.cols !== t0.cols && t.rows !== t0.rows ? t : null;
  });
  assert.ok(t1.cols < t0.cols && t1.rows < t0.rows, JSON.stringify({ t0, t1 }));
  // The resize message goes before the keystrokes, on the same websocket.
  assert.deepEqual(await run(main, 'stty size'), [`${t1.rows} ${t1.cols}`]);
  await page.setViewportSize({ width: 1400, height: 900 });
  await waitFor('the terminal to refit again', 10_000, async () =>
    (await tabs()).find((x) => x.id === main).cols === t0.cols);
  assert.deepEqual(await run(main, 'stty size'), [`${t0.rows} ${t0.cols}`]);
});

test('two tabs on one node are two shells', async () => {
  const second = await openTab('manager1');
  assert.equal(await count('#tabs .tab'), 2);
  assert.equal(await count('.term[data-node="manager1"]'), 2);
  assert.equal(await count('#tabs .tab.active'), 1);
  assert.equal(await page.locator('#tabs .tab.active').getAttribute('data-tab'), String(second));
  const [pid2] = await run(second, 'echo $$');
  const [pid1] = await run(main, 'echo $$');
  assert.match(pid1, /^\d+$/);
  assert.match(pid2, /^\d+$/);
  assert.notEqual(pid1, pid2);
  // A variable set in one is not in the other.
  await run(second, 'export SHOAL_UI_MARK=second');
  assert.deepEqual(await run(main, 'echo "mark=$SHOAL_UI_MARK"'), ['mark=']);
  assert.deepEqual(await run(second, 'echo "mark=$SHOAL_UI_MARK"'), ['mark=second']);
  // `exit` ends that shell (the server says so), and its × closes the tab; the first stays.
  await type(second, 'exit 3');
  await waitFor('the second shell to exit', 10_000, async () =>
    (await page.locator(`#tabs .tab[data-tab="${second}"]`).getAttribute('data-status')) === 'exited');
  assert.equal(await page.evaluate((id) => window.__shoalTerms.find((t) => t.id === id).exitCode, second), 3);
  await page.locator(`#tabs .tab[data-tab="${second}"] .tab-close`).click();
  await waitFor('the second tab to go', 5_000, async () => (await count('#tabs .tab')) === 1);
  assert.equal(await count('.term'), 1);
  assert.deepEqual(await run(main, 'echo still-here'), ['still-here']);
});

test('Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes', async () => {
  await run(main, 'echo "copy""-me-$((6*7))"');
  // Select the output line `copy-me-42` as a mouse would, then copy.
  const selected = await page.evaluate((id) => {
    const t = window.__shoalTerms.find((x) => x.id === id).term;
    const b = t.buffer.active;
    for (let i = b.length - 1; i >= 0; i--) {
      if (b.getLine(i).translateToString(true) === 'copy-me-42') {
        t.select(0, i, 'copy-me-42'.length);
        return t.getSelection();
      }
    }
    return null;
  }, main);
  assert.equal(selected, 'copy-me-42');
  await page.locator(`.term[data-tab="${main}"] .xterm-helper-textarea`).focus();
  await page.keyboard.press('Control+Shift+C');
  await waitFor('the clipboard to hold the selection', 5_000, async () =>
    (await page.evaluate(() => navigator.clipboard.readText())) === 'copy-me-42');
  await page.evaluate(() => navigator.clipboard.writeText('echo "pasted-$((6*7))"'));
  await page.locator(`.term[data-tab="${main}"] .xterm-helper-textarea`).focus();
  await page.keyboard.press('Control+Shift+V');
  await waitFor('the pasted command line', 5_000, async () =>
    (await screen(main)).some((l) => l.endsWith('echo "pasted-$((6*7))"')));
  await page.keyboard.press('Enter');
  await waitFor('the pasted command to run', 10_000, async () =>
    (await screen(main)).some((l) => l === 'pasted-42'));
});

test('a service typed in a terminal appears with its VIP and an lb_ mark per node', async () => {
  const t0 = Date.now();
  await type(main, 'swarmctl service create --name web --replicas 5 --publish 8080:80 shoal/whoami --port 80');
  await waitFor('5 running web tasks in the picture', 60_000, async () =>
    (await count('.task[data-service="web"][data-state="running"]')) === 5);
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`# web's 5 tasks drawn ${seconds} s after the command was typed`);
  // Each in its node's column, coloured by service (the same colour for all five).
  const boxes = await page.locator('.task[data-service="web"]').evaluateAll((els) => els.map((e) => ({
    node: e.dataset.node,
    column: e.parentElement.dataset.node,
    color: getComputedStyle(e).backgroundColor,
  })));
  for (const b of boxes) {
    assert.ok(NODES.includes(b.node), JSON.stringify(b));
    assert.equal(b.column, b.node);
  }
  assert.equal(new Set(boxes.map((b) => b.color)).size, 1, JSON.stringify(boxes));
  // Its VIP, and on that network a balancer mark per node listing it.
  const vip = await waitFor("web's VIP", 15_000, async () => {
    const loc = page.locator('.service[data-service="web"] .svc-vip');
    return (await loc.count()) > 0 ? { network: await loc.first().getAttribute('data-network'), text: await loc.first().textContent() } : null;
  });
  const vipAddr = vip.text.split(/\s+/).filter(Boolean).pop();
  assert.match(vipAddr, /^\d+\.\d+\.\d+\.\d+$/);
  await waitFor(`an lb_ mark on every node listing ${vipAddr}`, 15_000, async () => {
    for (const n of NODES) {
      const mark = page.locator(`.lb-mark[data-node="${n}"][data-network="${vip.network}"]`);
      if ((await mark.count()) !== 1) return null;
      const text = await mark.locator('.vip[data-service="web"]').textContent().catch(() => '');
      if (!text.includes(vipAddr)) return null;
      if (!(await mark.locator('.lb-name').textContent()).startsWith('lb_')) return null;
    }
    return true;
  });
  // The network's band, with its subnet.
  const band = page.locator(`.netlabel[data-network="${vip.network}"] .net-subnet`);
  assert.match(await band.textContent(), /^\d+\.\d+\.\d+\.\d+\/\d+$/);
  // Port links: one per node, to the node's address.
  assert.equal(await count('.port-link[data-service="web"]'), 5);
  for (const n of NODES) {
    const a = page.locator(`.port-link[data-service="web"][data-node="${n}"]`);
    assert.equal(await a.getAttribute('href'), `http://${addresses[n]}:8080/`);
    assert.equal(await a.getAttribute('target'), '_blank');
  }
  assert.equal(await page.locator('.service[data-service="web"] .svc-replicas').textContent(), '5/5');
  await page.screenshot({ path: path.join(OUT, 'lab-ui.png') });
});

test('the static view draws one snapshot, with no event stream and no terminals', async () => {
  const p = await ctx.newPage();
  const urls = [];
  p.on('request', (r) => urls.push(new URL(r.url()).pathname));
  p.on('pageerror', (e) => problems.push(`static view: page error: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') problems.push(`static view: console: ${m.text()}`);
  });
  try {
    // The token URL, as `lab ui` prints it: the token is traded for the cookie, `static` stays.
    await p.goto(`${URL0}&static=1`, { waitUntil: 'load' });
    assert.equal(p.url(), `${ORIGIN}/?static=1`);
    assert.equal(await p.evaluate(() => document.documentElement.dataset.view), 'static');
    await p.locator('#status[data-state="static"]').waitFor({ timeout: 15_000 });
    assert.match(await p.locator('#status').textContent(), /^snapshot \d\d:\d\d:\d\d$/);
    assert.equal(await p.locator('.node').count(), 5);
    assert.equal(await p.locator('.task[data-service="web"][data-state="running"]').count(), 5);
    assert.equal(await p.locator('#terminals').isVisible(), false);
    assert.equal(await p.locator('.node[role="button"]').count(), 0);
    await p.locator('.node[data-node="manager1"]').click();
    await sleep(500);
    assert.equal(await p.evaluate(() => window.__shoalTerms.length), 0, 'no terminal opens');
    assert.ok(urls.includes('/api/lab'), urls.join(' '));
    assert.ok(!urls.includes('/api/events'), `no event stream: ${urls.join(' ')}`);
    assert.ok(!urls.some((u) => u.startsWith('/ws/')), urls.join(' '));
  } finally {
    await p.close();
  }
});

test("a headless screenshot of the static view, as `lab ui` prints it, ends and shows the lab", async () => {
  // The command `lab ui` printed, run as printed (a fresh browser: nothing but the URL's token
  // signs it in), into out/ rather than ./lab.png and with a throwaway profile.
  const printed = fs.readFileSync(path.join(OUT, 'ui-1.out'), 'utf8');
  const m = printed.match(/^\s*chromium (--headless .*--screenshot=lab\.png) '(\S+)'$/m);
  assert.ok(m, `lab ui printed a screenshot command:\n${printed}`);
  const url = m[2];
  assert.equal(url, `${URL0}&static=1`);
  const png = path.join(OUT, 'static.png');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-ui-shot-'));
  const args = m[1].split(/\s+/).map((a) => (a === '--screenshot=lab.png' ? `--screenshot=${png}` : a));
  const t0 = Date.now();
  // `timeout`: a capture that hangs (the live page's event stream does that) fails here, bounded.
  const r = spawnSync('timeout', ['-k', '5', '60', CHROMIUM, ...args, `--user-data-dir=${profile}`, url], {
    encoding: 'utf8',
    timeout: 70_000,
  });
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  fs.rmSync(profile, { recursive: true, force: true });
  fs.writeFileSync(path.join(OUT, 'static-chromium.log'), `${r.stdout}\n${r.stderr}`);
  assert.notEqual(r.status, 124, `the screenshot did not finish within 60 s (see static-chromium.log)`);
  assert.equal(r.status, 0, `chromium exited ${r.status} after ${seconds} s:\n${r.stderr.slice(-2000)}`);
  console.log(`# static screenshot taken in ${seconds} s`);
  const buf = fs.readFileSync(png);
  assert.deepEqual(pngSize(buf), { width: 1400, height: 900 });
  // It shows the lab, not an empty or error page: the header's colour at its top left, and the
  // web service's colour (its running tasks) somewhere in the picture.
  const webFill = await page.locator('.task[data-service="web"][data-state="running"]').first()
    .evaluate((e) => getComputedStyle(e).backgroundColor);
  const p = await ctx.newPage();
  try {
    const seen = await p.evaluate(async ({ b64, webFill }) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const px = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
      const [wr, wg, wb] = webFill.match(/\d+/g).map(Number);
      const data = g.getImageData(0, 0, c.width, c.height).data;
      let web = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - wr) < 3 && Math.abs(data[i + 1] - wg) < 3 && Math.abs(data[i + 2] - wb) < 3) web++;
      }
      return { header: px(5, 5), web };
    }, { b64: buf.toString('base64'), webFill });
    assert.deepEqual(seen.header, [29, 35, 48], 'the header (#1d2330) at the top left');
    assert.ok(seen.web > 1000, `web's tasks drawn (${seen.web} pixels of ${webFill})`);
  } finally {
    await p.close();
  }
});

test('the port link opens a whoami page', async () => {
  const link = page.locator('.port-link[data-service="web"][data-node="worker1"]');
  const href = await link.getAttribute('href');
  // Fetched from here first (the routing mesh answers on every node).
  const body = await waitFor(`GET ${href}`, 20_000, async () => {
    const r = await fetch(href, { signal: AbortSignal.timeout(3000) });
    return r.ok ? r.text() : null;
  });
  assert.match(body, /^I'm \S+ running on /m);
  // Then as a person would: a click opens it in a new tab.
  const [popup] = await Promise.all([ctx.waitForEvent('page', { timeout: 10_000 }), link.click()]);
  await popup.waitForLoadState('load', { timeout: 15_000 });
  assert.equal(popup.url(), href);
  const text = await popup.locator('body').textContent({ timeout: 10_000 });
  assert.match(text, /I'm \S+ running on /);
  await popup.close();
  // The service's request rate, from the nodes' balancer counters (two samples 2 s apart).
  const rate = page.locator('.service[data-service="web"] .svc-rate');
  await waitFor("web's request rate", 20_000, async () => (await rate.count()) === 1);
  assert.ok(Number(await rate.getAttribute('data-rate')) >= 0);
  assert.match(await rate.textContent(), /^\d+(\.\d+)? req\/s$/);
});

test('scaling web to 2 removes three boxes', async () => {
  await type(main, 'swarmctl service scale web=2');
  await waitFor('2 web tasks in the picture', 30_000, async () =>
    (await count('.task[data-service="web"]')) === 2 &&
    (await count('.task[data-service="web"][data-state="running"]')) === 2);
  await waitFor('2/2', 10_000, async () =>
    (await page.locator('.service[data-service="web"] .svc-replicas').textContent()) === '2/2');
});

test("killing worker2's swarmd turns it Down", async () => {
  const rec = labFile().nodes.find((n) => n.name === 'worker2');
  assert.ok(rec && rec.pid, 'worker2 has a pid in lab.json');
  const cmdline = fs.readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.some((a) => a.endsWith('swarmd')), `pid ${rec.pid} is a swarmd: ${cmdline.join(' ')}`);
  process.kill(rec.pid, 'SIGKILL');
  await waitFor('worker2 Down in the picture', 45_000, async () =>
    (await page.locator('.node[data-node="worker2"]').getAttribute('data-state')) === 'down');
  assert.equal(await page.locator('.node[data-node="worker2"] .state-pill').textContent(), 'Down');
  assert.equal(await count('.node[data-state="ready"]'), 4);
});

test('a restarted lab ui is picked up by the open page without a reload', async () => {
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  const oldPid = Number(fs.readFileSync(PIDFILE, 'utf8').trim());
  const cmdline = fs.readFileSync(`/proc/${oldPid}/cmdline`, 'utf8');
  assert.match(cmdline, /lab\0ui\0/);
  const exited = waitFor('the old lab ui to end', 10_000, async () => !fs.existsSync(`/proc/${oldPid}`) ||
    fs.readFileSync(`/proc/${oldPid}/stat`, 'utf8').split(') ')[1].startsWith('Z'));
  process.kill(oldPid, 'SIGTERM');
  await exited;
  await waitFor('the disconnected banner', 15_000, async () =>
    (await page.locator('#status').getAttribute('data-state')) === 'disconnected');
  assert.match(await page.locator('#status').textContent(), /disconnected/);

  // The same lab, the same address (the page's origin): the token is kept in the lab directory.
  const listen = new URL(URL0).host;
  const out = fs.openSync(path.join(OUT, 'ui-2.out'), 'w');
  const err = fs.openSync(path.join(OUT, 'ui-2.err'), 'w');
  restarted = spawn(SWARMCTL, ['lab', 'ui', '--name', LAB, '--listen', listen], {
    env: process.env,
    stdio: ['ignore', out, err],
  });
  fs.writeFileSync(PIDFILE, `${restarted.pid}\n`);
  const printed = await waitFor('the restarted lab ui to print its address', 30_000, async () => {
    if (restarted.exitCode !== null) throw new Error(`lab ui ended: ${fs.readFileSync(path.join(OUT, 'ui-2.err'), 'utf8')}`);
    return (fs.readFileSync(path.join(OUT, 'ui-2.out'), 'utf8').match(/http:\/\/\S+\?token=\S+/) || [null])[0];
  });
  assert.equal(printed, URL0, 'the same address and token');
  const seen = Number(await page.evaluate(() => document.documentElement.dataset.snapshots));
  await waitFor('connected again', 30_000, async () =>
    (await page.locator('#status').getAttribute('data-state')) === 'connected');
  assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'no reload');
  await waitFor('a snapshot from the new server', 15_000, async () =>
    Number(await page.evaluate(() => document.documentElement.dataset.snapshots)) > seen);

  // The old tab's connection ended with the old server; Enter there opens a new shell on the
  // new one (the cookie works for its websockets too).
  assert.equal(await page.locator(`#tabs .tab[data-tab="${main}"]`).getAttribute('data-status'), 'closed');
  await page.locator(`#tabs .tab[data-tab="${main}"]`).click();
  await page.locator(`.term[data-tab="${main}"]`).click();
  await page.keyboard.press('Enter');
  await waitFor('a new shell in the old tab', 15_000, async () =>
    (await tabs()).find((x) => x.id === main).status === 'open');
  assert.deepEqual(await run(main, 'echo "back on $SHOAL_LAB_NODE"'), ['back on manager1']);

  // Live again: a new terminal, and a change typed there shows up in the picture.
  const t = await openTab('manager2');
  await type(t, 'swarmctl service scale web=3');
  await waitFor('3 web tasks in the picture', 30_000, async () =>
    (await count('.task[data-service="web"][data-state="running"]')) === 3);
  assert.equal(await page.locator('.node[data-node="worker2"]').getAttribute('data-state'), 'down');
  assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'no reload');
});

test('closing the last tab brings the hint back; Enter on a node opens a tab again', async () => {
  for (const t of await tabs()) {
    await page.locator(`#tabs .tab[data-tab="${t.id}"] .tab-close`).click();
  }
  await waitFor('every tab closed', 5_000, async () => (await count('#tabs .tab')) === 0);
  await waitFor('the hint back', 5_000, async () => (await hint()).visible);
  // What the hint says: a node reached with Tab opens with Enter.
  await page.locator('.node[data-node="worker1"]').focus();
  await page.keyboard.press('Enter');
  await newTab('worker1', []);
  assert.equal((await hint()).visible, false);
  await page.locator('#tabs .tab[data-node="worker1"] .tab-close').click();
  await waitFor('the hint back again', 5_000, async () => (await hint()).visible);
});

test('no CSP violation and no page error', () => {
  assert.deepEqual(problems, []);
});
