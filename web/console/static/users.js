// Users of an organization: create, enable/disable, delete, download a
// profile (.ovpn for one server, or the .tar of all), mint a temporary
// profile link and copy it.
import { call, download } from './api.js';
import { el, field, form, table, tag, fmtTime, showError } from './ui.js';

let currentOrg = ''; // in memory only: which organization the page shows

export function render(main, ctx) {
  const err = el('p', { class: 'err', role: 'alert' });
  const body = el('div');
  const linkOut = el('div', { id: 'profile-link', 'aria-live': 'polite' });
  main.append(el('h1', { text: 'Users' }), err, body);

  const init = async () => {
    const [{ organizations }, { servers }] = await Promise.all([call('GET', '/organization'), call('GET', '/server')]);
    if (!organizations.length) {
      body.append(el('p', { class: 'muted' }, 'Create an organization first (', el('a', { href: '#/orgs', text: 'Organizations' }), ').'));
      return;
    }
    if (!organizations.some((o) => o.id === currentOrg)) currentOrg = organizations[0].id;
    const pick = field({ name: 'org', label: 'Organization', type: 'select', value: currentOrg,
      options: organizations.map((o) => ({ value: o.id, label: o.name })) });
    pick.input.id = 'user-org';
    pick.wrap.querySelector('label').htmlFor = 'user-org';
    const list = el('section', { 'aria-label': 'Users list' });
    const create = form({
      id: 'user-create', title: 'New user', submit: 'Create',
      fields: [
        { name: 'name', label: 'Name', required: true },
        { name: 'email', label: 'Email (optional)', type: 'email' },
      ],
      onSubmit: async (v, f) => {
        const u = await call('POST', `/organization/${currentOrg}/user`, v.email ? { name: v.name, email: v.email } : { name: v.name });
        f.reset();
        ctx.toast(`Created ${u.name}`);
        await load();
      },
    });
    const load = async () => {
      const org = currentOrg;
      const { users } = await call('GET', `/organization/${org}/user`);
      const mine = servers.filter((s) => (s.organizations || []).includes(org));
      list.replaceChildren(table('Users', ['Name', 'Email', 'State', 'Profiles', 'Actions'],
        users.map((u) => row(u, org, mine, load, err, linkOut, ctx)), 'No user in this organization yet.'));
    };
    pick.input.addEventListener('change', () => {
      currentOrg = pick.input.value;
      linkOut.replaceChildren();
      load().catch((e) => showError(e, [], err));
    });
    body.append(el('div', { class: 'card' }, pick.wrap), create, linkOut, list);
    await load();
  };
  init().catch((e) => showError(e, [], err));
}

function row(u, org, servers, reload, err, linkOut, ctx) {
  const base = `/organization/${org}/user/${u.id}`;
  const act = (label, aria, fn, cls = 'secondary') => el('button', {
    type: 'button', class: cls, text: label, 'aria-label': `${aria} ${u.name}`,
    onclick: async (ev) => {
      ev.currentTarget.disabled = true;
      const b = ev.currentTarget;
      try { await fn(); } catch (e) { showError(e, [], err); } finally { b.disabled = false; }
    },
  });
  const srvPick = field({ name: 'server', label: `Server for ${u.name}'s profile`, type: 'select',
    options: servers.map((s) => ({ value: s.id, label: s.name })) });
  srvPick.wrap.classList.add('inline');
  const actions = el('td', { class: 'actions' },
    act(u.disabled ? 'Enable' : 'Disable', u.disabled ? 'Enable' : 'Disable', async () => {
      await call('PUT', base, { disabled: !u.disabled });
      ctx.toast(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}`);
      await reload();
    }),
    servers.length ? [srvPick.wrap,
      act('Download .ovpn', 'Download the .ovpn profile of', async () => {
        const name = await download('POST', `${base}/profile/${srvPick.input.value}`, `${u.name}.ovpn`, 'profile');
        ctx.toast(`Saved ${name}`);
        await reload();
      }),
      act('Download .tar', 'Download every profile of', async () => {
        await download('POST', `${base}/tar`, `${u.name}.tar`);
        ctx.toast('Saved the .tar');
        await reload();
      }),
      act('Temporary link', 'Make a temporary profile link for', async () => {
        const l = await call('POST', `${base}/link`);
        showLink(linkOut, u.name, l, ctx);
      })] : el('span', { class: 'muted', text: 'no server for this organization' }),
    act('Delete', 'Delete', async () => {
      if (!confirm(`Delete user ${u.name}? Their profiles stop working.`)) return;
      await call('DELETE', base);
      await reload();
    }, 'danger'));
  return [u.name, u.email || '', tag(!u.disabled, 'enabled', 'disabled'),
    u.profiles.length ? `${u.profiles.length} (last ${fmtTime(u.profiles.map((p) => p.issued_at).sort().pop())})` : 'none', actions];
}

function showLink(out, name, l, ctx) {
  const uri = field({ name: 'link_uri', label: `Pritunl Client link for ${name} (single use, until ${new Date(l.expires_at).toLocaleString()})`, value: l.uri });
  uri.input.readOnly = true;
  const url = field({ name: 'link_url', label: 'The same as an HTTPS address', value: l.url });
  url.input.readOnly = true;
  const copy = (f) => el('button', {
    type: 'button', class: 'secondary', text: 'Copy', 'aria-label': `Copy ${f.spec.label}`,
    onclick: async () => {
      f.input.select();
      try {
        await navigator.clipboard.writeText(f.input.value);
        ctx.toast('Copied');
      } catch {
        ctx.toast('Select the text and copy it by hand');
      }
    },
  });
  out.replaceChildren(el('section', { class: 'card', 'aria-label': 'Temporary profile link' },
    el('div', { class: 'linkbox' }, uri.wrap, copy(uri)), el('div', { class: 'linkbox' }, url.wrap, copy(url))));
}
