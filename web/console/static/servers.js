// Servers: create, edit, start/stop/restart, and each one's live status and
// connected clients (polled every 3 s while the page is shown).
import { call } from './api.js';
import { el, form, table, tag, fmtTime, fmtBytes, fmtDuration, poll, showError } from './ui.js';

export function render(main, ctx) {
  const err = el('p', { class: 'err', role: 'alert' });
  const editor = el('div');
  const list = el('section', { 'aria-label': 'Servers list' });
  const live = el('section', { 'aria-label': 'Status and connected clients', id: 'server-live' });
  main.append(el('h1', { text: 'Servers' }), err, editor, list, el('h2', { text: 'Status and connected clients' }), live);
  let servers = [];
  let orgs = [];

  const showEditor = (srv) => {
    const v = srv || { protocol: 'udp', port: 1194, hosts: [], organizations: [], dynamic_firewall: true };
    const f = form({
      id: srv ? 'server-edit' : 'server-create', title: srv ? `Edit ${srv.name}` : 'New server', submit: srv ? 'Save' : 'Create',
      fields: [
        { name: 'name', label: 'Name', value: v.name || '', required: true },
        { name: 'protocol', label: 'Protocol', type: 'select', value: v.protocol,
          options: [{ value: 'udp', label: 'UDP' }, { value: 'tcp', label: 'TCP' }] },
        { name: 'port', label: 'Port', type: 'number', value: v.port },
        { name: 'network', label: 'Tunnel network (IPv4 CIDR)', value: v.network || '', placeholder: '10.9.0.0/24' },
        { name: 'hosts', label: 'Public hosts (comma-separated)', value: v.hosts.join(', '), placeholder: 'vpn.example.com' },
        { name: 'dynamic_firewall', label: 'Dynamic firewall', type: 'checkbox', value: v.dynamic_firewall },
        { name: 'nat', label: 'NAT', type: 'checkbox', value: v.nat },
        { name: 'organizations', label: 'Organizations', type: 'checks', value: v.organizations,
          options: orgs.map((o) => ({ value: o.id, label: o.name })) },
      ],
      onSubmit: async (x) => {
        const body = { ...x, hosts: x.hosts.split(',').map((h) => h.trim()).filter(Boolean) };
        if (srv) {
          // Only what changed: the audit trail names the fields an update sets.
          const changed = Object.fromEntries(Object.entries(body)
            .filter(([k, val]) => JSON.stringify(val) !== JSON.stringify(srv[k] ?? (typeof val === 'boolean' ? false : undefined))));
          if (Object.keys(changed).length) await call('PUT', `/server/${srv.id}`, changed);
          ctx.toast(Object.keys(changed).length ? `Saved ${x.name}` : 'Nothing changed');
        } else {
          await call('POST', '/server', body);
          ctx.toast(`Created ${x.name}`);
        }
        showEditor(null);
        await load();
      },
    });
    if (srv) {
      f.append(el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => showEditor(null) }));
    }
    editor.replaceChildren(f);
    if (srv) f.fields.name.input.focus();
  };

  const action = (srv, what) => el('button', {
    type: 'button', class: what === 'stop' ? 'danger' : 'secondary', text: what[0].toUpperCase() + what.slice(1),
    'aria-label': `${what} server ${srv.name}`,
    onclick: async (ev) => {
      const b = ev.currentTarget;
      b.disabled = true;
      try {
        await call('POST', `/server/${srv.id}/${what}`);
        ctx.toast(`${srv.name}: ${what} done`);
        await refresh();
      } catch (e) { showError(e, [], err); } finally { b.disabled = false; }
    },
  });

  const load = async () => {
    [{ servers }, { organizations: orgs }] = await Promise.all([call('GET', '/server'), call('GET', '/organization')]);
    const names = Object.fromEntries(orgs.map((o) => [o.id, o.name]));
    list.replaceChildren(table('Servers', ['Name', 'Listen', 'Network', 'Hosts', 'Organizations', 'Firewall', 'Actions'],
      servers.map((s) => [s.name, `${s.protocol}/${s.port}`, s.network, s.hosts.join(', '),
        s.organizations.map((o) => names[o] || o).join(', '), tag(s.dynamic_firewall, 'dynamic', 'open'),
        el('td', { class: 'actions' },
          el('button', { type: 'button', class: 'secondary', text: 'Edit', 'aria-label': `Edit server ${s.name}`, onclick: () => showEditor(s) }),
          action(s, 'start'), action(s, 'stop'), action(s, 'restart'),
          el('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete server ${s.name}`,
            onclick: async () => {
              if (!confirm(`Delete server ${s.name}?`)) return;
              try { await call('DELETE', `/server/${s.id}`); await load(); } catch (e) { showError(e, [], err); }
            } }))]), 'No server yet.'));
  };

  // refresh reads each server's status and, for running ones, its clients.
  const refresh = async () => {
    const parts = await Promise.all(servers.map(async (s) => {
      const st = await call('GET', `/server/${s.id}/status`);
      const clients = st.running ? (await call('GET', `/server/${s.id}/clients`)).clients : [];
      return { s, st, clients };
    }));
    const now = Date.now();
    live.replaceChildren(...parts.map(({ s, st, clients }) => el('div', { class: 'card', 'data-server': s.id },
      el('div', { class: 'row' }, el('strong', { text: s.name }), tag(st.running, 'running', 'stopped'),
        st.running ? el('span', { class: 'muted', text: `pid ${st.pid} on ${st.device}, since ${fmtTime(st.since)}` }) : null,
        st.last_error ? el('span', { class: 'err', text: st.last_error }) : null),
      st.running ? table(`Clients of ${s.name}`, ['User', 'Real address', 'Tunnel address', 'Received', 'Sent', 'Connected for'],
        clients.map((c) => [c.user_id, c.real_address, c.virtual_address, fmtBytes(c.bytes_in), fmtBytes(c.bytes_out),
          fmtDuration((now - new Date(c.connected_since).getTime()) / 1000)]), 'No client connected.') : null)));
    if (!servers.length) live.replaceChildren(el('p', { class: 'muted', text: 'No server.' }));
  };

  let stopPoll = null;
  (async () => {
    await load();
    showEditor(null);
    stopPoll = poll(refresh, 3000, (e) => showError(e, [], err));
  })().catch((e) => showError(e, [], err));
  return () => { if (stopPoll) stopPoll(); };
}
