// Drives one headless Chromium for sluice's browser tests: the Python test
// (tests/integration/browser_lib.py) writes one JSON command a line on stdin
// and reads one JSON answer a line on stdout, so the test keeps control of
// the server (publishing, restarting) while the page stays open.
//
//   node driver.mjs [extra chromium flags...]
//   {"cmd":"page","url":U}                  new page (the previous one closes), load U
//   {"cmd":"eval","expr":E}                 value of the expression E in the page
//   {"cmd":"wait","expr":E,"timeout_ms":N}  until E is truthy in the page
//   {"cmd":"screenshot","path":P}           full-page PNG
//   {"cmd":"problems"}                      the page's console errors, page errors, CSP violations
//   {"cmd":"quit"}
// Every answer: {"ok":true,"value":...} or {"ok":false,"error":"..."}.
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Tests run as root in a container: no sandbox, no /dev/shm assumptions.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
         '--window-size=1200,1000', ...process.argv.slice(2)],
  defaultViewport: {width: 1200, height: 1000},
});

let page = null;
const problems = [];

async function newPage(url) {
  if (page) await page.close();
  problems.length = 0; // each page answers for itself
  page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
    });
  });
  const resp = await page.goto(url, {waitUntil: 'load', timeout: 15000});
  return {status: resp ? resp.status() : 0, headers: resp ? resp.headers() : {}};
}

async function handle(m) {
  switch (m.cmd) {
    case 'page': return newPage(m.url);
    case 'eval': return page.evaluate(m.expr);
    case 'wait':
      await page.waitForFunction(m.expr, {timeout: m.timeout_ms || 10000, polling: 100});
      return true;
    case 'screenshot':
      await page.screenshot({path: m.path, fullPage: true});
      return m.path;
    case 'problems': return problems.slice();
    default: throw new Error('unknown command ' + m.cmd);
  }
}

const rl = readline.createInterface({input: process.stdin});
for await (const line of rl) {
  if (!line.trim()) continue;
  const m = JSON.parse(line);
  if (m.cmd === 'quit') break;
  let answer;
  try {
    answer = {ok: true, value: (await handle(m)) ?? null};
  } catch (e) {
    answer = {ok: false, error: String(e && e.message || e)};
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
