// Live approvals: the ports the dynamic firewall holds open, per user, with
// the time left; read every 2 s, counted down every second in between.
import { call } from './api.js';
import { el, table, tag, fmtDuration, poll, showError } from './ui.js';

export function render(main) {
  const err = el('p', { class: 'err', role: 'alert' });
  const list = el('section', { id: 'approvals', 'aria-label': 'Live approvals', 'aria-live': 'polite' });
  main.append(el('h1', { text: 'Live approvals' }),
    el('p', { class: 'muted', text: 'Ports opened for a client after a valid approval request; each closes when its time runs out or its user is disabled.' }),
    err, list);
  let rows = [];
  let readAt = 0;
  const draw = () => {
    const gone = (Date.now() - readAt) / 1000;
    list.replaceChildren(table('Open ports', ['User', 'Server', 'Port', 'Addresses', 'Time left', 'Token used'],
      rows.map((a) => [el('span', { 'data-user': a.user_id, text: a.user_name || a.user_id }), a.server_name || a.server_id,
        `${a.protocol}/${a.port}`, el('span', { class: 'mono', text: a.addresses.join(', ') }),
        el('span', { class: 'left', text: fmtDuration(a.seconds_left - gone) }), tag(a.used, 'used', 'not yet')]),
      'No open port.'));
  };
  const load = async () => {
    ({ approvals: rows } = await call('GET', '/approval'));
    readAt = Date.now();
    err.textContent = '';
    draw();
  };
  const stopPoll = poll(load, 2000, (e) => showError(e, [], err));
  const ticker = setInterval(() => { if (!document.hidden && rows.length) draw(); }, 1000);
  return () => { stopPoll(); clearInterval(ticker); };
}
