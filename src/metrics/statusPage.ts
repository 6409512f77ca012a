/**
 * The status page at `/`: one self-contained HTML document (no external scripts, styles or fonts,
 * so it works on a cluster without internet) whose inline script polls /status.json every 2 s and
 * draws the loss curve as SVG. Worker names come from the network: they are set as text, never HTML.
 */

export const STATUS_REFRESH_MS = 2000;

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .6em}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:8em}
.card b{display:block;font-size:1.4em}
.row{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}
svg{background:#fff;border:1px solid #ddd}
#sample img{image-rendering:pixelated;width:256px;border:1px solid #ddd;background:#fff}
.muted{color:#888}`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
const fmt = (x, d) => x === null || x === undefined || !isFinite(x) ? '-' : Number(x).toFixed(d);
function drawCurve(points) {
  const svg = $('curve'), W = 480, H = 200, P = 30;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const finite = points.filter((p) => isFinite(p[1]));
  if (finite.length < 2) return;
  const xs = finite.map((p) => p[0]), ys = finite.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => P + (W - 2 * P) * (x - x0) / ((x1 - x0) || 1);
  const sy = (y) => H - P - (H - 2 * P) * (y - y0) / ((y1 - y0) || 1);
  const ns = 'http://www.w3.org/2000/svg';
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', finite.map((p) => sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1)).join(' '));
  line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#1f77b4'); line.setAttribute('stroke-width', '1.5');
  svg.appendChild(line);
  for (const [y, v] of [[P - 5, y1], [H - P + 15, y0]]) {
    const t = document.createElementNS(ns, 'text');
    t.setAttribute('x', 2); t.setAttribute('y', y); t.setAttribute('font-size', '11'); t.textContent = fmt(v, 4);
    svg.appendChild(t);
  }
}
function render(s) {
  $('step').textContent = s.step + ' / ' + s.totalSteps;
  $('loss').textContent = fmt(s.loss, 4);
  $('ips').textContent = fmt(s.imagesPerSecond, 1);
  $('lr').textContent = s.learningRate === null ? '-' : Number(s.learningRate).toExponential(2);
  $('state').textContent = s.stopping ? 'stopping' : 'training';
  drawCurve(s.losses);
  const body = $('workers');
  while (body.firstChild) body.removeChild(body.firstChild);
  for (const w of s.workers) {
    const tr = document.createElement('tr');
    for (const v of [w.name, w.backend, fmt(w.unitsPerSecond, 2), fmt(w.secondsPerUnit, 3), fmt(w.lastSeenSecondsAgo, 1) + ' s ago']) {
      const td = document.createElement('td'); td.textContent = v; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const img = $('grid');
  if (s.sampleStep !== null) {
    const src = 'samples/latest.png?step=' + s.sampleStep;
    if (img.getAttribute('src') !== src) img.setAttribute('src', src);
    img.hidden = false;
    $('sample-step').textContent = 'step ' + s.sampleStep;
  }
}
async function refresh() {
  try {
    const r = await fetch('status.json', { cache: 'no-store' });
    render(await r.json());
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    $('updated').textContent = 'coordinator unreachable (' + e.message + ')';
  }
}
refresh();
setInterval(refresh, ${STATUS_REFRESH_MS});`;

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ddpm-cluster status</title><style>${STYLE}</style></head>
<body>
<h1>ddpm-cluster <span id="state" class="muted"></span></h1>
<div class="cards">
  <div class="card">step<b id="step">-</b></div>
  <div class="card">loss<b id="loss">-</b></div>
  <div class="card">images/s<b id="ips">-</b></div>
  <div class="card">learning rate<b id="lr">-</b></div>
</div>
<div class="row">
  <div><h2>Loss</h2><svg id="curve" width="480" height="200" viewBox="0 0 480 200" role="img" aria-label="loss curve"></svg></div>
  <div id="sample"><h2>Samples (EMA) <span id="sample-step" class="muted"></span></h2><img id="grid" alt="latest sample grid" hidden></div>
</div>
<h2>Workers</h2>
<table><thead><tr><th>name</th><th>backend</th><th>units/s</th><th title="the coordinator's estimate, from which it hands out units">s/unit</th><th>last seen</th></tr></thead><tbody id="workers"></tbody></table>
<p id="updated" class="muted"></p>
<script>${SCRIPT}</script>
</body>
</html>
`;
