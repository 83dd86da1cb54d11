// Organizations: list, create, rename, delete.
import { call } from './api.js';
import { el, form, table, fmtTime, showError } from './ui.js';

export function render(main, ctx) {
  const list = el('section', { 'aria-label': 'Organizations list' });
  const err = el('p', { class: 'err', role: 'alert' });
  const load = async () => {
    const { organizations } = await call('GET', '/organization');
    list.replaceChildren(table('Organizations', ['Name', 'ID', 'Created', ''], organizations.map((o) => [
      o.name, el('span', { class: 'mono', text: o.id }), fmtTime(o.created_at),
      el('td', { class: 'actions' }, el('button', {
        type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete organization ${o.name}`,
        onclick: async () => {
          if (!confirm(`Delete organization ${o.name}?`)) return;
          try {
            await call('DELETE', `/organization/${o.id}`);
            ctx.toast(`Deleted ${o.name}`);
            await load();
          } catch (e) { showError(e, [], err); }
        },
      })),
    ]), 'No organization yet: create one.'));
  };
  main.append(el('h1', { text: 'Organizations' }),
    form({
      id: 'org-create', title: 'New organization', submit: 'Create',
      fields: [{ name: 'name', label: 'Name', required: true }],
      onSubmit: async (v, f) => {
        const o = await call('POST', '/organization', { name: v.name });
        f.reset();
        ctx.toast(`Created ${o.name}`);
        await load();
      },
    }), err, list);
  load().catch((e) => showError(e, [], err));
}
