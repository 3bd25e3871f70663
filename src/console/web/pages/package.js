// Packages: the list, and one package -- its versions (size, files, new and reused
// bytes), where each version is on each DP, its deployments; distribute and delete.
import * as api from '../api.js';
import {badge, bytes, field, fill, h, link, section, seg, showError, table, time} from '../dom.js';

export const listPage = {
  title: 'Packages',
  mount(view) {
    const body = h('div');
    view.append(h('h1', 'Packages'), body);
    return {
      async update() {
        const r = await api.get('/packages');
        fill(body, table([
          {title: 'Package', cell: (p) => link('/package/' + seg(p.name), p.name)},
          {title: 'Description', cell: (p) => p.description},
          {title: 'Latest', cell: (p) => p.latest_version ? String(p.latest_version) : '—', cls: 'num'},
          {title: 'Size', cell: (p) => bytes(p.latest_bytes), cls: 'num'},
          {title: 'Versions', cell: (p) => String(p.versions), cls: 'num'},
          {title: 'Deployments', cell: (p) => String(p.deployments), cls: 'num'},
          {title: 'Created', cell: (p) => time(p.created)},
        ], r.packages, 'No packages yet. Create one with `depot package create NAME --source DIR`.'));
      },
    };
  },
};

export const page = {
  title: 'Package',
  mount(view, ctx, {name}) {
    const head = h('div');
    const body = h('div');
    const actions = ctx.can('operator') ? h('div.actions') : null;
    view.append(head, actions, body);
    let actionsBuilt = false;
    const gone = {yes: false};  // deleted here: no more updates of a page about to close
    return {
      async update() {
        if (gone.yes) return;
        const p = await api.get('/packages/' + seg(name));
        fill(head, h('h1', 'Package ', h('span.name', p.name)),
            p.description ? h('p.desc', p.description) : null,
            h('p.muted', 'Created ', time(p.created), ' · distributed to ',
                p.distributed_to.length ? p.distributed_to.map((t) => `${t.kind} ${t.name}`).join(', ') : 'nothing yet'));
        if (actions && !actionsBuilt) {
          actionsBuilt = true;
          fill(actions, await distributeForm(p, ctx), deleteForm(p, ctx, gone));
        }
        fill(body, versions(p), deploymentsOf(p));
      },
    };
  },
};

function versions(p) {
  return section('Versions', table([
    {title: 'Version', cell: (v) => String(v.version), cls: 'num'},
    {title: 'State', cell: (v) => badge(v.state)},
    {title: 'Created', cell: (v) => time(v.created)},
    {title: 'Files', cell: (v) => String(v.files), cls: 'num'},
    {title: 'Size', cell: (v) => bytes(v.bytes), cls: 'num'},
    {title: 'New', cell: (v) => v.new_bytes == null ? '—' : bytes(v.new_bytes), cls: 'num'},
    {title: 'Reused', cell: (v) => v.new_bytes == null ? '—' : bytes(v.bytes - v.new_bytes), cls: 'num'},
    {title: 'On DPs', cell: (v) => h('ul.dpstates', v.dps.map(dpState)), cls: 'wide'},
  ], p.versions, 'No versions.'));
}

function dpState(d) {
  const pct = d.bytes_total ? Math.floor(100 * d.bytes_done / d.bytes_total) : 0;
  return h('li', link('/dp/' + seg(d.dp), d.dp), ' ', badge(d.state),
      d.state === 'ready' ? null : ` ${pct}%`,
      d.attempts ? h('span.muted', ` (${d.attempts} attempts)`) : null);
}

function deploymentsOf(p) {
  return section('Deployments', table([
    {title: '#', cell: (d) => link('/deployment/' + d.id, String(d.id)), cls: 'num'},
    {title: 'Program', cell: (d) => d.program},
    {title: 'To', cell: (d) => d.collection},
    {title: 'Kind', cell: (d) => d.kind},
    {title: 'State', cell: (d) => badge(d.state)},
  ], p.deployments, 'Not deployed.'),
  h('p', link('/deployments/new?package=' + seg(p.name), 'Deploy this package →')));
}

async function distributeForm(p, ctx) {
  const [dps, kids] = await Promise.all([api.get('/dps'),
    api.get('/children').catch(() => ({children: []}))]);
  const current = new Set(p.distributed_to.map((t) => `${t.kind}:${t.name}`));
  const groups = [...new Set(dps.dps.flatMap((d) => d.groups))].sort();
  const targets = [
    ...dps.dps.map((d) => ['dp:' + d.name, 'DP ' + d.name]),
    ...groups.map((g) => ['group:' + g, 'group ' + g]),
    ...kids.children.map((c) => ['child:' + c.code, 'child site ' + c.code]),
  ];
  const boxes = targets.map(([value, label]) => h('label.check',
      h('input', {type: 'checkbox', value, checked: current.has(value)}), ' ', label));
  const err = h('p.error', {role: 'alert', hidden: true});
  const done = h('p.ok', {role: 'status'});
  const submit = async (ev, remove) => {
    ev.preventDefault();
    showError(err, null);
    fill(done);
    const to = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    if (!to.length) return showError(err, 'Choose at least one DP, group or child site.');
    try {
      await api.post('/distributions', {package: p.name, to, remove});
      fill(done, remove ? 'Removed from ' + to.join(', ') : 'Distributing to ' + to.join(', '));
      ctx.refresh();
    } catch (e) { showError(err, e); }
  };
  return h('form.card.inline', {'aria-label': 'Distribute', onsubmit: (ev) => submit(ev, false)},
      h('h2', 'Distribute'),
      targets.length ? h('div.checks', boxes) : h('p.muted', 'No DPs yet.'),
      err, done,
      h('div.buttons', h('button.primary', {type: 'submit'}, 'Distribute'),
          h('button', {type: 'button', onclick: (ev) => submit(ev, true)}, 'Remove from these')));
}

// Deleting a package is for good: the person types its name to confirm.
function deleteForm(p, ctx, gone) {
  const input = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false'});
  const err = h('p.error', {role: 'alert', hidden: true});
  return h('form.card.inline.danger', {
    'aria-label': 'Delete package',
    onsubmit: async (ev) => {
      ev.preventDefault();
      showError(err, null);
      if (input.value !== p.name) return showError(err, `Type ${p.name} exactly to delete it.`);
      gone.yes = true;
      try {
        await api.del('/packages/' + seg(p.name));
        ctx.go('packages');
      } catch (e) {
        gone.yes = false;
        showError(err, e);
      }
    },
  }, h('h2', 'Delete'),
  h('p', 'Retires every version: DPs and agents purge it, and it cannot be deployed again.'),
  field(`Type ${p.name} to confirm`, input), err,
  h('button.dangerous', {type: 'submit'}, 'Delete package'));
}
