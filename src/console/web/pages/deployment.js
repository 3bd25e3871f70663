// Deployments: the list, a new deployment, and one deployment -- counts per state,
// a live chart, the clients table, failures grouped by message, cancel.
import * as api from '../api.js';
import {stateChart} from '../chart.js';
import {badge, field, fill, h, kStates, link, section, seg, showError, stateBar, table, time} from '../dom.js';

export const listPage = {
  title: 'Deployments',
  mount(view, ctx) {
    const body = h('div');
    view.append(h('div.titlebar', h('h1', 'Deployments'),
        ctx.can('operator') ? h('a.button.primary', {href: '#/deployments/new'}, 'New deployment') : null), body);
    return {
      async update() {
        const r = await api.get('/deployments');
        fill(body, table([
          {title: '#', cell: (d) => link('/deployment/' + d.id, String(d.id)), cls: 'num'},
          {title: 'Package', cell: (d) => link('/package/' + seg(d.package), d.package)},
          {title: 'Program', cell: (d) => d.program},
          {title: 'To', cell: (d) => d.collection},
          {title: 'Kind', cell: (d) => d.kind},
          {title: 'State', cell: (d) => badge(d.state)},
          {title: 'Start', cell: (d) => time(d.start)},
          {title: 'Progress', cell: (d) => stateBar(d.clients, d.clients.targeted), cls: 'wide'},
        ], r.deployments.slice().reverse(), 'No deployments yet.'));
      },
    };
  },
};

export const page = {
  title: 'Deployment',
  mount(view, ctx, {id}) {
    const head = h('div');
    const counts = h('div');
    const chartBox = h('div.chartbox');
    const failures = h('div');
    const clientsBox = h('div');
    const points = [];  // counts over time, sampled on every update
    const filter = {state: '', text: '', attr: ''};
    let last = null;
    const redrawClients = () => last && fill(clientsBox, clientsTable(last, filter));
    const controls = clientControls(filter, redrawClients);
    let actions = null;
    const actionsBox = h('div');  // outside what updates redraw: a pending confirm keeps its focus
    view.append(head, actionsBox, h('div.grid', section('Progress', counts, chartBox), section('Failures', failures)),
        section('Clients', controls.node, clientsBox));
    return {
      async update() {
        const d = await api.get('/deployments/' + seg(id) + '?attributes=1');
        last = d;
        controls.setKeys([...new Set(d.reports.flatMap((r) => Object.keys(r.attributes || {})))].sort());
        if (!points.length) points.push(...history(d));
        points.push({t: Date.now(), counts: {...d.clients}});
        fill(head, h('div.titlebar', h('h1', `Deployment ${d.id}`), badge(d.state)),
            h('p', link('/package/' + seg(d.package), d.package), ` · program ${d.program} · `,
                d.kind, ' to ', link('/collections', d.collection),
                d.pinned_version ? ` · version ${d.pinned_version}` : ''),
            h('p.muted', 'Starts ', time(d.start), d.deadline ? [' · deadline ', time(d.deadline)] : null,
                d.windows.length ? ' · windows ' + d.windows.map((w) =>
                  `${w.start}+${w.duration_s / 60}m ${w.tz}`).join(', ') : ''));
        if (ctx.can('operator') && d.state === 'active') {
          if (!actions) actionsBox.append(actions = cancelForm(d, ctx));
        } else if (actions) {
          actions.remove();
          actions = null;
        }
        fill(counts, stateBar(d.clients, d.clients.targeted),
            h('dl.counts', ['targeted', ...kStates].map((s) =>
              h('div', h('dt', s), h('dd', {dataset: {state: s}}, String(d.clients[s] || 0))))));
        fill(chartBox, stateChart(points, d.clients.targeted));
        fill(failures, failureGroups(d), bySite(d));
        redrawClients();
      },
    };
  },
};

// Before the page opened: when each client reached the state it is in now.
function history(d) {
  const done = d.reports.filter((r) => r.state === 'succeeded' || r.state === 'failed')
      .map((r) => ({t: Date.parse(r.updated), state: r.state})).sort((a, b) => a.t - b.t);
  const start = Date.parse(d.start);
  const out = [{t: Math.min(start, done.length ? done[0].t : start), counts: {}}];
  const c = {succeeded: 0, failed: 0};
  for (const r of done) {
    ++c[r.state];
    out.push({t: r.t, counts: {...c}});
  }
  return out;
}

// The subtree's share, per child site (docs/hierarchy.md), when there is one.
function bySite(d) {
  const sites = Object.entries(d.sites || {});
  if (!sites.length) return null;
  return [h('h2', 'By site'), table([
    {title: 'Site', cell: ([site]) => site},
    ...kStates.map((st) => ({title: st, cell: ([, c]) => String(c[st] || 0), cls: 'num'})),
  ], sites)];
}

function failureGroups(d) {
  const groups = new Map();
  for (const r of d.reports.filter((x) => x.state === 'failed')) {
    const key = r.detail || `exit code ${r.exit_code ?? '?'}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const rows = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  return table([
    {title: 'Clients', cell: ([, rs]) => String(rs.length), cls: 'num'},
    {title: 'Message', cell: ([m]) => h('span.detail', m)},
    {title: 'For example', cell: ([, rs]) => rs.slice(0, 3).map((r, i) =>
      [i ? ', ' : '', link('/client/' + seg(r.client), r.name || r.client)])},
  ], rows, 'No failures.');
}

function clientControls(filter, redraw) {
  const sel = h('select', {'aria-label': 'State', onchange: () => { filter.state = sel.value; redraw(); }},
      h('option', {value: ''}, 'every state'), kStates.map((s) => h('option', {value: s}, s)));
  const search = h('input', {type: 'search', placeholder: 'client name', 'aria-label': 'Search clients',
    oninput: () => { filter.text = search.value.toLowerCase(); redraw(); }});
  const attr = h('select', {'aria-label': 'Attribute column',
    onchange: () => { filter.attr = attr.value; redraw(); }}, h('option', {value: ''}, 'no attribute column'));
  let known = '';
  return {
    node: h('div.filters', sel, search, attr),
    setKeys(keys) {
      if (keys.join('\n') === known) return;
      known = keys.join('\n');
      fill(attr, h('option', {value: ''}, 'no attribute column'),
          keys.map((k) => h('option', {value: k, selected: k === filter.attr}, 'column: ' + k)));
    },
  };
}

function clientsTable(d, f) {
  const rows = d.reports.filter((r) => (!f.state || r.state === f.state) &&
      (!f.text || (r.name || '').toLowerCase().includes(f.text) || r.client.includes(f.text)));
  const cols = [
    {title: 'Client', cell: (r) => link('/client/' + seg(r.client), r.name || r.client)},
    {title: 'Site', cell: (r) => r.site || 'here'},
    {title: 'State', cell: (r) => badge(r.state)},
    {title: 'Version', cell: (r) => r.version == null ? '—' : String(r.version), cls: 'num'},
    {title: 'Exit', cell: (r) => r.exit_code == null ? '—' : String(r.exit_code), cls: 'num'},
    {title: 'Last report', cell: (r) => time(r.updated)},
    {title: 'Detail', cell: (r) => h('span.detail', r.detail || '')},
  ];
  if (f.attr) {
    cols.splice(1, 0, {title: f.attr, cell: (r) => {
      const v = (r.attributes || {})[f.attr];
      return v === undefined ? '—' : Array.isArray(v) ? v.join(', ') : String(v);
    }});
  }
  const waiting = (d.clients.targeted || 0) - d.reports.length;
  return [table(cols, rows, 'No client matches.'),
    waiting > 0 ? h('p.muted', `${waiting} targeted clients have not reported yet.`) : null];
}

function cancelForm(d, ctx) {
  const err = h('p.error', {role: 'alert', hidden: true});
  const confirm = h('button.dangerous', {type: 'button', hidden: true, onclick: async () => {
    showError(err, null);
    try {
      await api.post(`/deployments/${d.id}/cancel`);
      ctx.refresh();
    } catch (e) { showError(err, e); }
  }}, 'Yes, cancel it');
  const ask = h('button', {type: 'button', onclick: () => { confirm.hidden = false; confirm.focus(); }},
      'Cancel deployment');
  return h('div.actions', ask, ' ', confirm, err);
}

export const newPage = {
  title: 'New deployment',
  mount(view, ctx) {
    const form = h('div');
    view.append(h('h1', 'New deployment'), form);
    let built = false;
    return {
      async update() {
        if (built) return;
        built = true;
        if (!ctx.can('operator')) return fill(form, h('p', 'A read-only token cannot deploy.'));
        const [pk, co] = await Promise.all([api.get('/packages'), api.get('/collections')]);
        const want = new URLSearchParams(location.hash.split('?')[1] || '').get('package');
        fill(form, deployForm(pk.packages, co.collections, want, ctx));
      },
    };
  },
};

function localToIso(v) {
  return v ? new Date(v).toISOString().replace(/\.\d+Z$/, 'Z') : '';
}

function deployForm(packages, collections, want, ctx) {
  const pkg = h('select', {name: 'package', required: true},
      packages.map((p) => h('option', {value: p.name, selected: p.name === want}, p.name)));
  const program = h('select', {name: 'program', required: true});
  const loadPrograms = async () => {
    fill(program);
    if (!pkg.value) return;
    try {
      const r = await api.get('/packages/' + seg(pkg.value) + '/programs');
      fill(program, (r.programs || []).map((p) => {
        const n = typeof p === 'string' ? p : p.name;
        return h('option', {value: n}, n);
      }));
    } catch (e) { showError(err, e); }
  };
  pkg.addEventListener('change', loadPrograms);
  const col = h('select', {name: 'collection', required: true},
      collections.map((c) => h('option', {value: c.name}, `${c.name} (${c.members} clients)`)));
  const kind = h('select', {name: 'kind'}, h('option', {value: 'required'}, 'required (installs by the deadline)'),
      h('option', {value: 'available'}, 'available (the user installs it)'));
  const start = h('input', {type: 'datetime-local', name: 'start'});
  const deadline = h('input', {type: 'datetime-local', name: 'deadline'});
  const windows = h('input', {type: 'text', name: 'windows', placeholder: '22:00+4h@Europe/Berlin, 03:00+1h'});
  const err = h('p.error', {role: 'alert', hidden: true});
  const form = h('form.card.form', {onsubmit: async (ev) => {
    ev.preventDefault();
    showError(err, null);
    const body = {package: pkg.value, program: program.value, collection: col.value, kind: kind.value};
    if (start.value) body.start = localToIso(start.value);
    if (deadline.value) body.deadline = localToIso(deadline.value);
    const w = windows.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (w.length) {
      body.windows = [];
      for (const spec of w) {
        const m = /^(\d\d:\d\d)\+([0-9]+[smhd]?(?:[0-9]+[smh])*)(?:@(.+))?$/.exec(spec);
        if (!m) return showError(err, `window "${spec}" is not HH:MM+DURATION[@ZONE], like 22:00+4h@Europe/Berlin`);
        body.windows.push({start: m[1], duration: m[2], tz: m[3] || 'UTC'});
      }
    }
    try {
      const r = await api.post('/deployments', body);
      ctx.go('deployment/' + r.id);
    } catch (e) { showError(err, e); }
  }},
  field('Package', pkg), field('Program', program), field('To collection', col,
      h('span', 'or ', link('/collections', 'make a collection'))),
  field('Kind', kind), field('Start (your time; empty: now)', start),
  field('Deadline (your time; optional)', deadline),
  field('Maintenance windows (optional)', windows, 'HH:MM+DURATION[@ZONE], comma separated'),
  err, h('button.primary', {type: 'submit'}, 'Deploy'));
  loadPrograms();
  return form;
}
