// A small SVG line chart of clients per state over time (no library needed).
import {kStates} from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// points: [{t: ms, counts: {state: n}}] in time order. Draws one step line per
// state that was ever above zero, with a legend; the y axis runs to `total`.
export function stateChart(points, total) {
  const W = 640, H = 200, L = 36, R = 8, T = 8, B = 24;
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'aria-label': 'Clients per state over time'});
  if (!points.length) return svg;
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1000);
  const max = Math.max(1, total, ...points.flatMap((p) => kStates.map((s) => p.counts[s] || 0)));
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = (n) => T + (H - T - B) * (1 - n / max);
  svg.append(el('line', {x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis'}),
      el('line', {x1: L, y1: T, x2: L, y2: y(0), class: 'axis'}),
      el('text', {x: L - 4, y: y(max) + 4, 'text-anchor': 'end', class: 'tick'}, String(max)),
      el('text', {x: L - 4, y: y(0), 'text-anchor': 'end', class: 'tick'}, '0'));
  const fmt = (t) => new Date(t).toLocaleTimeString();
  svg.append(el('text', {x: L, y: H - 6, class: 'tick'}, fmt(t0)),
      el('text', {x: W - R, y: H - 6, 'text-anchor': 'end', class: 'tick'}, fmt(t1)));
  let legendX = L + 8;
  for (const s of kStates) {
    if (!points.some((p) => p.counts[s])) continue;
    let d = '';
    points.forEach((p, i) => {
      const n = p.counts[s] || 0;
      d += i === 0 ? `M${x(p.t)},${y(n)}` : `H${x(p.t)}V${y(n)}`;
    });
    d += `H${x(t1)}`;
    svg.append(el('path', {d, class: 'line s-' + s}));
    svg.append(el('text', {x: legendX, y: T + 12, class: 'legend s-' + s}, s));
    legendX += 12 + 7 * s.length;
  }
  return svg;
}
