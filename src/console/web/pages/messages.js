// Messages: a live tail of the site's status messages, filtered by severity,
// package, DP, client, deployment or code, each linked to what it is about.
import * as api from '../api.js';
import {badge, fill, h, link, seg, table, time} from '../dom.js';

const kFilters = ['package', 'dp', 'client', 'deployment', 'code'];

export const page = {
  title: 'Messages',
  mount(view) {
    const given = new URLSearchParams(location.hash.split('?')[1] || '');
    const sev = h('select', {'aria-label': 'Severity'},
        [['', 'every severity'], ['warning', 'warnings and errors'], ['error', 'errors']].map(([v, t]) =>
          h('option', {value: v, selected: given.get('severity') === v}, t)));
    const inputs = Object.fromEntries(kFilters.map((k) => [k, h('input', {
      type: k === 'deployment' || k === 'code' ? 'number' : 'text', min: 0, placeholder: k,
      'aria-label': k, value: given.get(k) || '', size: 12})]));
    const err = h('p.error', {role: 'alert', hidden: true});
    const body = h('div');
    let timer = 0, asked = 0;
    const changed = () => { clearTimeout(timer); timer = setTimeout(() => self.update(), 200); };
    sev.addEventListener('change', changed);
    Object.values(inputs).forEach((i) => i.addEventListener('input', changed));
    view.append(h('h1', 'Messages'), h('div.filters', sev, Object.values(inputs)), err, body);
    const self = {
      async update() {
        const q = {severity: sev.value, limit: 200};
        for (const k of kFilters) q[k] = inputs[k].value.trim();
        const mine = ++asked;  // filters and live updates overlap: the newest answer wins
        try {
          const r = await api.get('/messages' + api.query(q));
          if (mine !== asked) return;
          err.hidden = true;
          fill(body, messageRows(r.messages.slice().reverse(), 'No messages match.'));
        } catch (e) {
          // A filter naming no client, say: the site says what is wrong with it.
          if (e.status !== 400 && e.status !== 404) throw e;
          if (mine !== asked) return;
          fill(err, e.message);
          err.hidden = false;
        }
      },
    };
    return self;
  },
};

// Messages, newest first, as a table with links to their subjects.
export function messageRows(msgs, empty) {
  return table([
    {title: 'Time', cell: (m) => [time(m.last_time || m.time), m.count > 1 ? h('span.muted', ` ×${m.count}`) : null]},
    {title: 'Severity', cell: (m) => badge(m.severity)},
    {title: 'Code', cell: (m) => link('/messages?code=' + m.code, String(m.code)), cls: 'num'},
    {title: 'Message', cell: (m) => h('span.msgtext', m.text), cls: 'wide'},
    {title: 'About', cell: (m) => subjects(m)},
  ], msgs, empty);
}

function subjects(m) {
  const out = [];
  const add = (node) => { if (out.length) out.push(' · '); out.push(node); };
  if (m.package) add(link('/package/' + seg(m.package), m.version ? `${m.package} v${m.version}` : m.package));
  if (m.deployment) add(link('/deployment/' + m.deployment, `deployment ${m.deployment}`));
  if (m.dp) add(link('/dp/' + seg(m.dp), `DP ${m.dp}`));
  if (m.client) add(link('/client/' + seg(m.client), 'client ' + (m.params && m.params.client_name || m.client.slice(0, 8))));
  if (m.site) add(`site ${m.site}`);
  return out;
}
