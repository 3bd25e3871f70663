// Tokens (admin): who may use the API; create one (its secret is shown once) and
// revoke one.
import * as api from '../api.js';
import {badge, field, fill, h, section, showError, table, time} from '../dom.js';

export const page = {
  title: 'Tokens',
  mount(view, ctx) {
    const body = h('div');
    const err = h('p.error', {role: 'alert', hidden: true});
    // The token whose revocation is being confirmed: a live update redraws the
    // table, and must not take the question away.
    const asking = {id: 0};
    view.append(h('h1', 'Tokens'), err, body, ctx.can('admin') ? createForm(ctx) : null);
    return {
      async update() {
        if (!ctx.can('admin')) return fill(body, h('p', 'Only an admin token may see tokens.'));
        const r = await api.get('/tokens');
        fill(body, table([
          {title: '#', cell: (t) => String(t.id), cls: 'num'},
          {title: 'Name', cell: (t) => t.name},
          {title: 'Role', cell: (t) => t.role},
          {title: 'State', cell: (t) => badge(t.state)},
          {title: 'Created', cell: (t) => time(t.created)},
          {title: 'Expires', cell: (t) => time(t.expires)},
          {title: 'Last used', cell: (t) => time(t.last_used)},
          {title: '', cell: (t) => t.state !== 'active' ? '' : t.id === ctx.tokenId ? h('span.muted', 'signed in') : revoke(t, err, ctx, asking)},
        ], r.tokens));
        const confirm = body.querySelector('button.dangerous:not([hidden])');
        if (confirm && document.activeElement === document.body) confirm.focus();
      },
    };
  },
};

// Revoking asks once more, in place: whatever uses the token stops working.
function revoke(t, err, ctx, asking) {
  const confirm = h('button.dangerous', {type: 'button', hidden: asking.id !== t.id, onclick: async () => {
    showError(err, null);
    asking.id = 0;
    try {
      await api.del('/tokens/' + t.id);
      ctx.refresh();
    } catch (e) { showError(err, e); }
  }}, 'Yes, revoke');
  const ask = h('button', {type: 'button', hidden: asking.id === t.id,
    'aria-label': `Revoke token ${t.id} (${t.name})`,
    onclick: () => { asking.id = t.id; ask.hidden = true; confirm.hidden = false; confirm.focus(); }}, 'Revoke');
  return h('span', ask, confirm);
}

function createForm(ctx) {
  const role = h('select', {name: 'role'}, ['read-only', 'operator', 'admin', 'enroll'].map((r) =>
    h('option', {value: r}, r)));
  const name = h('input', {type: 'text', name: 'name', maxlength: 128});
  const expires = h('input', {type: 'text', name: 'expires', placeholder: '30d, or 2027-01-01T00:00:00Z'});
  const err = h('p.error', {role: 'alert', hidden: true});
  const out = h('div', {role: 'status'});
  return section('New token', h('form.form', {onsubmit: async (ev) => {
    ev.preventDefault();
    showError(err, null);
    fill(out);
    const body = {role: role.value};
    if (name.value.trim()) body.name = name.value.trim();
    if (expires.value.trim()) body.expires = expires.value.trim();
    try {
      const t = await api.post('/tokens', body);
      fill(out, h('p.ok', `Token ${t.id} (${t.role}) created. Its secret, shown this once:`),
          h('pre.secret', t.token));
      ctx.refresh();
    } catch (e) { showError(err, e); }
  }}, field('Role', role), field('Name (optional)', name), field('Expires (optional)', expires),
  err, h('button.primary', {type: 'submit'}, 'Create token'), out));
}
