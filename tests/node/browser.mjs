// A headless Chromium driven by playwright-core, for tests written in Python
// (tests/browser.py): one JSON request per line on stdin, one JSON answer per line
// on stdout. Uses the system's Chromium (DEPOT_CHROMIUM, default /usr/bin/chromium);
// playwright-core never downloads a browser.
import {createInterface} from 'node:readline';
import {chromium} from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.DEPOT_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const context = await browser.newContext({viewport: {width: 1280, height: 800}, timezoneId: process.env.DEPOT_TZ || 'Europe/Berlin'});
const page = await context.newPage();
const problems = [];  // console errors, uncaught exceptions, failed requests
page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
page.on('pageerror', (e) => problems.push('exception: ' + e.message));
page.on('requestfailed', (r) => {
  // A long poll cut short by a navigation is not a problem.
  if (!r.url().includes('/api/v1/changes')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
});

function locate(a) {
  let l = page.locator(a.selector);
  if (a.text !== undefined) l = l.filter({hasText: a.text});
  return l.first();
}

const ops = {
  goto: async (a) => { await page.goto(a.url); },
  reload: async () => { await page.reload(); },
  viewport: async (a) => { await page.setViewportSize({width: a.width, height: a.height}); },
  eval: async (a) => page.evaluate(a.js),
  click: async (a) => { await locate(a).click({timeout: a.timeout}); },
  fill: async (a) => { await locate(a).fill(a.value, {timeout: a.timeout}); },
  select: async (a) => { await locate(a).selectOption(a.value, {timeout: a.timeout}); },
  press: async (a) => { await page.keyboard.press(a.key); },
  wait: async (a) => { await locate(a).waitFor({state: a.state || 'visible', timeout: a.timeout}); },
  // The console's CSP forbids eval, so waitForFunction cannot compile `js` in the
  // page; evaluate it through the debugger protocol until it holds instead.
  wait_fn: async (a) => {
    const end = Date.now() + a.timeout;
    for (;;) {
      if (await page.evaluate(a.js)) return;
      if (Date.now() > end) throw new Error(`timeout ${a.timeout} ms waiting for ${a.js}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  },
  text: async (a) => locate(a).innerText({timeout: a.timeout}),
  count: async (a) => page.locator(a.selector).count(),
  html: async (a) => locate(a).evaluate((e) => e.innerHTML),
  screenshot: async (a) => { await page.screenshot({path: a.path, fullPage: !!a.full_page}); },
  problems: async () => problems.splice(0),
  focused: async () => page.evaluate(() => {
    const e = document.activeElement;
    return e ? `${e.tagName.toLowerCase()}:${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 60)}` : '';
  }),
};

const rl = createInterface({input: process.stdin});
process.stdout.write(JSON.stringify({ready: true}) + '\n');
for await (const line of rl) {
  let req;
  try { req = JSON.parse(line); } catch { continue; }
  if (req.op === 'close') break;
  try {
    const f = ops[req.op];
    if (!f) throw new Error('no such op: ' + req.op);
    const result = await f(req);
    process.stdout.write(JSON.stringify({ok: true, result: result === undefined ? null : result}) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ok: false, error: String(e.message || e)}) + '\n');
  }
}
await browser.close();
