// Overview: the site at a glance -- packages with DP coverage, deployments with
// their progress, DPs and child sites with health, silent clients, the latest
// warnings and errors.
import * as api from '../api.js';
import {badge, bytes, fill, h, link, section, seg, stateBar, table, time} from '../dom.js';
import {messageRows} from './messages.js';

export const page = {
  title: 'Overview',
  mount(view) {
    const body = h('div.grid');
    view.append(h('h1', 'Overview'), body);
    return {
      async update() {
        const [st, msgs, procs] = await Promise.all([
          api.get('/status'),
          api.get('/messages?severity=warning&limit=8'),
          api.get('/processes'),
        ]);
        fill(body, tiles(st), packages(st), deployments(st), dpsCard(st), children(st),
            processes(procs), silent(st), section('Latest warnings and errors',
                messageRows(msgs.messages.slice().reverse(), 'No warnings or errors.'),
                h('p', link('/messages?severity=warning', 'All messages →'))));
      },
    };
  },
};

function tiles(st) {
  const reachable = st.dps.filter((d) => d.reachable).length;
  const active = st.deployments.filter((d) => d.state === 'active').length;
  const tile = (n, label, route, warn) =>
    h('a.tile' + (warn ? '.warn' : ''), {href: '#/' + route}, h('strong', String(n)), h('span', label));
  return h('div.tiles.wide',
      tile(st.packages.length, 'packages', 'packages'),
      tile(active, 'active deployments', 'deployments'),
      tile(`${reachable}/${st.dps.length}`, 'DPs reachable', 'dps', reachable < st.dps.length),
      tile(`${st.clients.total - st.clients.offline}/${st.clients.total}`, 'clients seen recently',
          'clients', st.clients.offline > 0));
}

function packages(st) {
  return section('Packages', table([
    {title: 'Package', cell: (p) => link('/package/' + seg(p.package), p.package)},
    {title: 'Version', cell: (p) => String(p.version), cls: 'num'},
    {title: 'Size', cell: (p) => bytes(p.bytes), cls: 'num'},
    {title: 'DP coverage', cell: (p) => coverage(p.dps)},
  ], st.packages, 'No packages yet: `depot package create NAME --source DIR`.'));
}

function coverage(d) {
  const text = `${d.ready}/${d.assigned} ready` + (d.failed ? `, ${d.failed} failed` : '');
  const cls = d.failed ? '.bad' : d.ready < d.assigned ? '.busy' : '.good';
  return h('span.cov' + cls, text);
}

function deployments(st) {
  return section('Deployments', table([
    {title: '#', cell: (d) => link('/deployment/' + d.id, String(d.id)), cls: 'num'},
    {title: 'Package', cell: (d) => link('/package/' + seg(d.package), d.package)},
    {title: 'To', cell: (d) => d.collection},
    {title: 'State', cell: (d) => badge(d.state)},
    {title: 'Progress', cell: (d) => stateBar(d.clients, d.clients.targeted), cls: 'wide'},
  ], st.deployments, 'No active deployments.'));
}

function dpsCard(st) {
  return section('Distribution points', table([
    {title: 'DP', cell: (d) => link('/dp/' + seg(d.name), d.name)},
    {title: 'Health', cell: (d) => badge(d.reachable ? 'reachable' : 'unreachable')},
    {title: 'Last seen', cell: (d) => time(d.last_seen)},
    {title: 'Versions', cell: (d) => versionCounts(d.versions)},
  ], st.dps, 'No DPs: `depot dp add NAME --url URL`.'));
}

export function versionCounts(v) {
  const parts = ['ready', 'syncing', 'verifying', 'pending', 'failed']
      .filter((s) => v[s]).map((s) => `${v[s]} ${s}`);
  return parts.length ? parts.join(', ') : 'none';
}

function children(st) {
  const kids = st.hierarchy.children || [];
  const parent = st.hierarchy.parent;
  if (!kids.length && !parent) return null;
  return section('Sites',
      parent ? h('p', 'Parent ', parent.url, ': ', badge(parent.state || 'unknown'),
          parent.last_contact ? [' last contact ', time(parent.last_contact)] : null) : null,
      kids.length ? table([
        {title: 'Child site', cell: (c) => c.code},
        {title: 'Link', cell: (c) => badge(c.health)},
        {title: 'Since', cell: (c) => time(c.since)},
        {title: 'Silent', cell: (c) => c.silent_s == null ? '—' : `${c.silent_s} s`, cls: 'num'},
      ], kids) : null);
}

function processes(p) {
  if (!p.processes || p.processes.length < 2) return null;
  return section('Site processes', table([
    {title: 'Host', cell: (x) => x.host},
    {title: 'PID', cell: (x) => String(x.pid), cls: 'num'},
    {title: 'URL', cell: (x) => x.url},
    {title: 'Started', cell: (x) => time(x.started)},
    {title: 'Seen', cell: (x) => time(x.seen)},
  ], p.processes));
}

function silent(st) {
  const c = st.clients;
  return section(`Clients not seen recently (${c.offline})`, table([
    {title: 'Client', cell: (x) => link('/client/' + seg(x.id), x.name || x.id)},
    {title: 'Last seen', cell: (x) => time(x.last_seen)},
  ], c.offline_list, 'Every client has been seen recently.'));
}
