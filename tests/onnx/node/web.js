// Drives the page of `samdistill export --web DIR` in headless Chromium (puppeteer-core) for the
// tests. Usage: node web.js JOB.json, where JOB is
//   {"dir": "DIR", "image": "x.png", "chromium": "/usr/bin/chromium", "out_dir": "OUT",
//    "clicks": [{"x": 10, "y": 20, "shift": false}, {"x": 5, "y": 5, "to": [90, 80]}, ...],
//    "timeout_ms": 300000}
// It serves DIR over http on a free local port (WebAssembly needs http, not file://), opens
// index.html, gives the page the image through its file input, clicks each (x, y) image pixel on
// the page (shift: a background point; `to`: a drag from there, a box) and after each writes the
// mask the page drew
// (its overlay canvas: 1 where painted) to OUT/mask<k>.bin (height x width bytes).
// OUT/result.json: {"state": window.samdistill after each click, "console": [messages of type
// error or warning, and uncaught page errors], "requests_failed": [...]}.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const puppeteer = require('puppeteer-core');

const TYPES = {'.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
               '.wasm': 'application/wasm', '.onnx': 'application/octet-stream'};

function serve(dir) {
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
    const file = path.join(dir, name || 'index.html');
    if (!file.startsWith(path.resolve(dir)) || !fs.existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, {'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream'});
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const timeout = job.timeout_ms || 300000;
  const server = await serve(path.resolve(job.dir));
  const browser = await puppeteer.launch({
    executablePath: job.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
  });
  const result = {state: [], console: [], requests_failed: []};
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(timeout);
    await page.setViewport({width: 1600, height: 1200, deviceScaleFactor: 1});
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') result.console.push(m.type() + ': ' + m.text());
    });
    page.on('pageerror', (e) => result.console.push('pageerror: ' + e.message));
    page.on('requestfailed', (r) => result.requests_failed.push(r.url()));
    await page.goto('http://127.0.0.1:' + server.address().port + '/index.html');
    await page.waitForFunction('window.samdistill && (window.samdistill.loaded || window.samdistill.error)');
    const input = await page.$('#file');
    await input.uploadFile(path.resolve(job.image));
    await page.waitForFunction('window.samdistill.ready || window.samdistill.error');
    for (const [k, click] of job.clicks.entries()) {
      const before = await page.evaluate(() => window.samdistill.decodes);
      const rect = await page.evaluate(() => {
        const r = document.getElementById('prompts').getBoundingClientRect();
        return {left: r.left, top: r.top, scale: r.width / window.samdistill.image.width};
      });
      const at = (x, y) => [rect.left + x * rect.scale, rect.top + y * rect.scale];
      if (click.to) {  // a drag from (x, y) to `to`: a box
        await page.mouse.move(...at(click.x, click.y));
        await page.mouse.down();
        await page.mouse.move(...at(click.to[0], click.to[1]), {steps: 8});
        await page.mouse.up();
      } else {
        if (click.shift) await page.keyboard.down('Shift');
        await page.mouse.click(...at(click.x, click.y));
        if (click.shift) await page.keyboard.up('Shift');
      }
      await page.waitForFunction((n) => window.samdistill.decodes > n || window.samdistill.error,
                                 {}, before);
      const drawn = await page.evaluate(() => {
        const c = document.getElementById('mask');
        const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const bits = new Array(c.width * c.height);
        for (let i = 0; i < bits.length; ++i) bits[i] = rgba[i * 4 + 3] > 0 ? 1 : 0;
        return {bits, state: window.samdistill};
      });
      fs.writeFileSync(path.join(job.out_dir, 'mask' + k + '.bin'), Buffer.from(drawn.bits));
      result.state.push(drawn.state);
    }
  } finally {
    fs.writeFileSync(path.join(job.out_dir, 'result.json'), JSON.stringify(result));
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
