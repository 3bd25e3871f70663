// Distribution points: health, what each holds, what fails and when it is tried
// again; add one (its token is shown once) and remove one.
import * as api from '../api.js';
import {badge, bytes, field, fill, h, link, section, seg, showError, table, time} from '../dom.js';
import {versionCounts} from './overview.js';

export const page = {
  title: 'DPs',
  mount(view, ctx) {
    const body = h('div');
    view.append(h('h1', 'Distribution points'), body, ctx.can('admin') ? addForm(ctx) : null);
    return {
      async update() {
        const r = await api.get('/dps');
        fill(body, table([
          {title: 'DP', cell: (d) => link('/dp/' + seg(d.name), d.name)},
          {title: 'Health', cell: (d) => health(d)},
          {title: 'Last seen', cell: (d) => time(d.last_seen)},
          {title: 'Groups', cell: (d) => d.groups.join(', ')},
          {title: 'Versions', cell: (d) => versionCounts(d.versions)},
          {title: 'URL', cell: (d) => h('span.url', d.url)},
        ], r.dps, 'No DPs yet.'));
      },
    };
  },
};

function health(d) {
  return h('span', {dataset: {dp: d.name, health: d.reachable ? 'reachable' : 'unreachable'}},
      badge(d.reachable ? 'reachable' : 'unreachable'),
      d.probe_attempts ? h('span.muted', ` ${d.probe_attempts} failed probes`) : null);
}

export const detailPage = {
  title: 'DP',
  mount(view, ctx, {name}) {
    const head = h('div');
    const body = h('div');
    const gone = {yes: false};  // removed here: no more updates of a page about to close
    view.append(head, body, ctx.can('admin') ? removeForm(name, ctx, gone) : null);
    return {
      async update() {
        if (gone.yes) return;
        const d = await api.get('/dps/' + seg(name));
        const sched = d.schedule || {};
        fill(head, h('div.titlebar', h('h1', 'DP ', h('span.name', d.name)), health(d)),
            h('p', h('span.url', d.url), ' · last seen ', time(d.last_seen), ' · added ', time(d.created)),
            h('p.muted', 'Groups: ', d.groups.join(', ') || 'none', ' · boundaries: ',
                d.boundaries.join(', ') || 'none', ' · rate: ',
                sched.max_rate ? bytes(sched.max_rate) + '/s' : 'unlimited',
                sched.windows && sched.windows.length ? ' · windows: ' + sched.windows.map((w) =>
                  typeof w === 'string' ? w : JSON.stringify(w)).join(', ') : ''));
        fill(body, section('Versions', table([
          {title: 'Package', cell: (v) => link('/package/' + seg(v.package), v.package)},
          {title: 'Version', cell: (v) => String(v.version), cls: 'num'},
          {title: 'State', cell: (v) => badge(v.state)},
          {title: 'Synced', cell: (v) => `${bytes(v.bytes_done)} of ${bytes(v.bytes_total)}`, cls: 'num'},
          {title: 'Since', cell: (v) => time(v.since)},
          {title: 'Failure', cell: (v) => v.last_error ? h('span.detail', v.last_error,
              v.attempts ? ` (attempt ${v.attempts})` : '') : '—'},
          {title: 'Next retry', cell: (v) => v.next_retry ? time(v.next_retry) : '—'},
        ], d.versions, 'Nothing distributed to this DP.')));
      },
    };
  },
};

function addForm(ctx) {
  const name = h('input', {type: 'text', name: 'name', required: true, autocomplete: 'off'});
  const url = h('input', {type: 'url', name: 'url', required: true, placeholder: 'https://dp1.example:8443'});
  const groups = h('input', {type: 'text', name: 'groups', placeholder: 'berlin, floor-2'});
  const err = h('p.error', {role: 'alert', hidden: true});
  const out = h('div', {role: 'status'});
  return h('form.card.form', {'aria-label': 'Add a DP', onsubmit: async (ev) => {
    ev.preventDefault();
    showError(err, null);
    fill(out);
    const body = {name: name.value.trim(), url: url.value.trim()};
    const g = groups.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (g.length) body.groups = g;
    try {
      const r = await api.post('/dps', body);
      fill(out, h('p.ok', `DP ${r.name} added. Its token, shown this once:`),
          h('pre.secret', r.token),
          h('p', 'On the DP machine: ', h('code', `depot dp serve --data /var/lib/depot-dp --site ${location.origin} --token ${r.token}`)));
      ctx.refresh();
    } catch (e) { showError(err, e); }
  }}, h('h2', 'Add a DP'), field('Name', name), field('URL clients reach it at', url),
  field('Groups (optional)', groups), err, h('button.primary', {type: 'submit'}, 'Add DP'), out);
}

function removeForm(name, ctx, gone) {
  const err = h('p.error', {role: 'alert', hidden: true});
  const confirm = h('button.dangerous', {type: 'button', hidden: true, onclick: async () => {
    gone.yes = true;
    try {
      await api.del('/dps/' + seg(name));
      ctx.go('dps');
    } catch (e) {
      gone.yes = false;
      showError(err, e);
    }
  }}, `Yes, remove ${name}`);
  return h('section.card.danger', h('h2', 'Remove'),
      h('p', 'Revokes its token; clients stop being sent to it.'),
      h('button', {type: 'button', onclick: () => { confirm.hidden = false; confirm.focus(); }}, 'Remove DP'),
      ' ', confirm, err);
}
