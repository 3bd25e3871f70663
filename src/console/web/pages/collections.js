// Collections: the list, and a new collection from a rule, with a live preview of
// the clients it matches as the rule is typed.
import * as api from '../api.js';
import {field, fill, h, link, section, seg, showError, table} from '../dom.js';

export const page = {
  title: 'Collections',
  mount(view, ctx) {
    const body = h('div');
    view.append(h('h1', 'Collections'), body, ctx.can('operator') ? createForm(ctx) : null);
    return {
      async update() {
        const r = await api.get('/collections');
        fill(body, table([
          {title: 'Collection', cell: (c) => c.name},
          {title: 'Kind', cell: (c) => c.kind},
          {title: 'Rule', cell: (c) => c.rule ? h('code', c.rule) : '—', cls: 'wide'},
          {title: 'Clients', cell: (c) => String(c.members), cls: 'num'},
          {title: 'Deployments', cell: (c) => String(c.deployments), cls: 'num'},
          {title: '', cell: (c) => ctx.can('operator') ? h('a', {href: '#/deployments/new'}, 'deploy to it') : ''},
        ], r.collections, 'No collections yet.'));
      },
    };
  },
};

function createForm(ctx) {
  const name = h('input', {type: 'text', name: 'name', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9._\\-]{1,64}'});
  const rule = h('textarea', {name: 'rule', rows: 2, required: true, spellcheck: 'false',
    placeholder: 'os == "linux" and hostname ~ "^web-"'});
  const description = h('input', {type: 'text', name: 'description'});
  const preview = h('div.preview', {'aria-live': 'polite'});
  const err = h('p.error', {role: 'alert', hidden: true});
  let timer = 0, asked = 0;
  rule.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      if (!rule.value.trim()) return fill(preview);
      try {
        const r = await api.post('/rules/preview', {rule: rule.value});
        if (mine !== asked) return;  // an answer to an older text
        if (!r.valid) return fill(preview, h('p.error', r.error));
        fill(preview, h('p', h('strong', {dataset: {count: String(r.count)}}, String(r.count)),
            ` client${r.count === 1 ? '' : 's'} match now`, r.count > r.clients.length ? ` (first ${r.clients.length} shown)` : '', ':'),
        h('ul.inline', r.clients.map((c) => h('li', link('/client/' + seg(c.id), c.name || c.id)))));
      } catch (e) {
        if (mine === asked) fill(preview, h('p.error', e.message));
      }
    }, 250);
  });
  return section('New collection from a rule', h('form.form', {onsubmit: async (ev) => {
    ev.preventDefault();
    showError(err, null);
    try {
      await api.post('/collections', {name: name.value.trim(), rule: rule.value,
        description: description.value});
      name.value = rule.value = description.value = '';
      fill(preview);
      ctx.refresh();
    } catch (e) { showError(err, e); }
  }}, field('Name', name), field('Rule', rule, 'Attributes the agents report: ==, !=, ~ (regex), in, and, or, not'),
  preview, field('Description (optional)', description), err,
  h('button.primary', {type: 'submit'}, 'Create collection')));
}
