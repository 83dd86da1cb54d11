// IPsec links: create links, locations and hosts (with their priority),
// the live state of every host (available, active; read every 3 s) and the
// URI an agent is started with.
import { call } from './api.js';
import { el, field, form, table, tag, fmtTime, poll, showError } from './ui.js';

export function render(main, ctx) {
  const err = el('p', { class: 'err', role: 'alert' });
  const forms = el('div');
  const state = el('section', { id: 'link-state', 'aria-label': 'Link hosts state', 'aria-live': 'polite' });
  const uriOut = el('div', { 'aria-live': 'polite' });
  main.append(el('h1', { text: 'Links' }), err, forms, el('h2', { text: 'Hosts' }), uriOut, state);
  let links = [];
  let shape = '';

  const locations = () => links.flatMap((l) => l.locations.map((loc) => ({ l, loc })));
  const drawForms = () => {
    const linkForm = form({
      id: 'link-create', title: 'New link', submit: 'Create link',
      fields: [{ name: 'name', label: 'Link name' }],
      onSubmit: async (v) => { await call('POST', '/link', { name: v.name }); ctx.toast(`Created ${v.name}`); await load(true); },
    });
    const locForm = links.length ? form({
      id: 'location-create', title: 'New location', submit: 'Add location',
      fields: [
        { name: 'link', label: 'Link', type: 'select', options: links.map((l) => ({ value: l.id, label: l.name })) },
        { name: 'name', label: 'Location name' },
        { name: 'routes', label: 'Networks behind it (CIDR, comma-separated)', placeholder: '10.1.0.0/16' },
        { name: 'router', label: 'Plain strongSwan router (no agent)', type: 'checkbox' },
      ],
      onSubmit: async (v) => {
        await call('POST', `/link/${v.link}/location`, { name: v.name, router: v.router,
          routes: v.routes.split(',').map((r) => r.trim()).filter(Boolean) });
        await load(true);
      },
    }) : null;
    const locs = locations();
    const hostForm = locs.length ? form({
      id: 'host-create', title: 'New host', submit: 'Add host',
      fields: [
        { name: 'where', label: 'Location', type: 'select', options: locs.map(({ l, loc }) => ({ value: `${l.id}/${loc.id}`, label: `${l.name} / ${loc.name}` })) },
        { name: 'name', label: 'Host name' },
        { name: 'priority', label: 'Priority (1–1000, highest wins)', type: 'number', value: 1 },
        { name: 'address', label: 'Address (optional)' },
      ],
      onSubmit: async (v) => {
        const [lid, locid] = v.where.split('/');
        const body = { name: v.name, priority: v.priority };
        if (v.address) body.address = v.address;
        await call('POST', `/link/${lid}/location/${locid}/host`, body);
        await load(true);
      },
    }) : null;
    forms.replaceChildren(linkForm, locForm || '', hostForm || '');
  };

  const showURI = async (l, loc, h) => {
    const { uri } = await call('GET', `/link/${l.id}/location/${loc.id}/host/${h.id}/uri`);
    const f = field({ name: 'agent_uri', label: `Agent URI of ${h.name} (a secret: give it to that host only)`, value: uri });
    f.input.readOnly = true;
    uriOut.replaceChildren(el('div', { class: 'card linkbox' }, f.wrap,
      el('button', { type: 'button', class: 'secondary', text: 'Copy', 'aria-label': `Copy the agent URI of ${h.name}`,
        onclick: async () => { f.input.select(); try { await navigator.clipboard.writeText(uri); ctx.toast('Copied'); } catch { ctx.toast('Select the text and copy it by hand'); } } }),
      el('button', { type: 'button', class: 'secondary', text: 'Hide', onclick: () => uriOut.replaceChildren() })));
  };

  const load = async (structural) => {
    ({ links } = await call('GET', '/link'));
    const newShape = JSON.stringify(links.map((l) => [l.id, l.locations.map((loc) => [loc.id, loc.hosts.map((h) => h.id)])]));
    if (structural || newShape !== shape) {
      shape = newShape;
      drawForms();
    }
    const rows = [];
    for (const l of links) {
      for (const loc of l.locations) {
        for (const h of loc.hosts) {
          rows.push([l.name, `${loc.name}${loc.router ? ' (router)' : ''}`, h.name, String(h.priority),
            tag(h.available, 'available', 'unavailable'), tag(h.active, 'active', 'standby'), fmtTime(h.last_report),
            el('td', { class: 'actions' }, loc.router ? el('span', { class: 'muted', text: 'router' }) : el('button', {
              type: 'button', class: 'secondary', text: 'Agent URI', 'aria-label': `Agent URI of ${h.name}`,
              onclick: () => showURI(l, loc, h).catch((e) => showError(e, [], err)),
            }))]);
        }
      }
    }
    state.replaceChildren(table('Hosts by location', ['Link', 'Location', 'Host', 'Priority', 'Available', 'Active', 'Last report', ''],
      rows, links.length ? 'No host yet.' : 'No link yet.'));
  };
  return poll(() => load(false), 3000, (e) => showError(e, [], err));
}
