// Clients: search by name or attribute; one client's attributes, collections,
// current policy and reports.
import * as api from '../api.js';
import {badge, fill, h, link, section, seg, table, time} from '../dom.js';

export const page = {
  title: 'Clients',
  mount(view) {
    const q0 = new URLSearchParams(location.hash.split('?')[1] || '').get('q') || '';
    const body = h('div');
    let timer = 0, asked = 0;
    const search = h('input', {type: 'search', value: q0, placeholder: 'name, or attribute=value (os_release=debian)',
      'aria-label': 'Search clients', oninput: () => { clearTimeout(timer); timer = setTimeout(() => self.update(), 200); }});
    view.append(h('h1', 'Clients'), h('div.filters', search), body);
    const self = {
      // The site searches (name, id or any attribute value; key=value for one
      // attribute) and sends the first 500 matches, not the whole fleet.
      async update() {
        const mine = ++asked;  // typing and live updates overlap: the newest answer wins
        const r = await api.get('/clients' + api.query({q: search.value.trim(), limit: kShown}));
        if (mine === asked) fill(body, clientTable(r));
      },
    };
    return self;
  },
};

const kShown = 500;

function clientTable(r) {
  return [h('p.muted', `${r.matched} of ${r.total} clients`, r.matched > r.clients.length ?
    ` (the first ${r.clients.length} shown: narrow the search)` : ''), table([
    {title: 'Client', cell: (c) => link('/client/' + seg(c.id), c.name || c.id)},
    {title: 'Seen', cell: (c) => badge(c.online ? 'online' : 'offline')},
    {title: 'Last seen', cell: (c) => time(c.last_seen)},
    {title: 'OS', cell: (c) => (c.attributes || {}).os_release || (c.attributes || {}).os || '—'},
    {title: 'Address', cell: (c) => c.address || '—'},
    {title: 'Site', cell: (c) => c.site || 'here'},
  ], r.clients, 'No client matches.')];
}

export const detailPage = {
  title: 'Client',
  mount(view, ctx, {id}) {
    const body = h('div');
    view.append(body);
    return {
      async update() {
        const c = await api.get('/clients/' + seg(id));
        fill(body, h('h1', 'Client ', h('span.name', c.name || c.id)),
            h('p.muted', c.id, ' · ', c.address || 'no address', ' · enrolled ', time(c.enrolled),
                ' · last seen ', time(c.last_seen)),
            h('div.grid',
                section('Attributes', attributes(c.attributes)),
                section('Collections', c.collections.length ? h('ul', c.collections.map((n) =>
                  h('li', link('/collections', n)))) : h('p.muted', 'None.')),
                section('Reports', table([
                  {title: 'Deployment', cell: (r) => link('/deployment/' + r.deployment, String(r.deployment))},
                  {title: 'State', cell: (r) => badge(r.state)},
                  {title: 'Version', cell: (r) => r.version == null ? '—' : String(r.version), cls: 'num'},
                  {title: 'Exit', cell: (r) => r.exit_code == null ? '—' : String(r.exit_code), cls: 'num'},
                  {title: 'Updated', cell: (r) => time(r.updated)},
                  {title: 'Detail', cell: (r) => h('span.detail', r.detail || '')},
                ], c.deployments, 'No reports.')),
                section('Current policy', policy(c.policy)),
                section('Messages', h('p', link('/messages?client=' + seg(c.id), 'Messages about this client →')))));
      },
    };
  },
};

function attributes(a) {
  const keys = Object.keys(a || {}).sort();
  if (!keys.length) return h('p.muted', 'None reported.');
  return h('dl.attrs', keys.map((k) => h('div', h('dt', k),
      h('dd', Array.isArray(a[k]) ? a[k].join(', ') : String(a[k])))));
}

function policy(p) {
  const deps = (p && p.deployments) || [];
  return [table([
    {title: 'Deployment', cell: (d) => link('/deployment/' + d.id, String(d.id))},
    {title: 'Package', cell: (d) => link('/package/' + seg(d.package), d.package)},
    {title: 'Version', cell: (d) => String(d.version ?? '—'), cls: 'num'},
    {title: 'Program', cell: (d) => d.program || '—'},
    {title: 'Kind', cell: (d) => d.kind || '—'},
  ], deps, 'Nothing to install.'),
  h('details', h('summary', 'As the agent receives it'), h('pre.json', JSON.stringify(p, null, 2)))];
}
