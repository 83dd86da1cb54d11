// The notification state (www, web, vpn) and an admin's override.
import { call } from './api.js';
import { el, form, tag, fmtTime, showError } from './ui.js';

const states = [{ value: 'ok', label: 'ok' }, { value: 'disabled', label: 'disabled' }];

export function render(main, ctx) {
  const err = el('p', { class: 'err', role: 'alert' });
  const view = el('section', { class: 'card', id: 'notification-state', 'aria-label': 'Notification state' });
  const over = el('div');
  main.append(el('h1', { text: 'Notification' }), err, view, over);
  const load = async () => {
    const n = await call('GET', '/notification');
    const s = n.effective;
    view.replaceChildren(
      el('div', { class: 'row' }, 'www ', tag(s.www === 'ok', 'ok', 'disabled'), ' web ', tag(s.web === 'ok', 'ok', 'disabled'),
        ' vpn ', tag(s.vpn === 'ok', 'ok', 'disabled')),
      el('p', {}, `Source: ${n.source}`, n.message ? ` — “${n.message}”` : ''),
      el('p', { class: 'muted', text: n.polling ? `Polling ${n.url}; last poll ${fmtTime(n.last_poll) || 'never'}, last accepted ${fmtTime(n.last_accepted) || 'never'}` : 'Not polling (no notification URL configured).' }),
      n.last_error ? el('p', { class: 'err', text: `Last error: ${n.last_error}` }) : '',
      n.apply_error ? el('p', { class: 'err', text: `Apply error: ${n.apply_error}` }) : '',
      n.override ? el('p', {}, `Override by ${n.override.by} at ${fmtTime(n.override.at)}`, ' ',
        el('button', { type: 'button', class: 'secondary', text: 'Clear the override', onclick: async () => {
          try { await call('DELETE', '/notification/override'); ctx.toast('Override cleared'); await load(); } catch (e) { showError(e, [], err); }
        } })) : '');
    const cur = n.override ? n.override.states : s;
    over.replaceChildren(form({
      id: 'notification-override', title: 'Override', submit: 'Set override',
      fields: [
        { name: 'www', label: 'www (every request)', type: 'select', value: cur.www, options: states },
        { name: 'web', label: 'web (the front)', type: 'select', value: cur.web, options: states },
        { name: 'vpn', label: 'vpn (the workers)', type: 'select', value: cur.vpn, options: states },
        { name: 'message', label: 'Message (optional)', value: n.override ? n.override.message || '' : '' },
      ],
      onSubmit: async (v) => {
        if ((v.www === 'disabled' || v.web === 'disabled') && !confirm('Disabling www or web locks this console out too: only `portcullis notify` on the host undoes it. Go on?')) return;
        await call('PUT', '/notification/override', { states: { www: v.www, web: v.web, vpn: v.vpn }, message: v.message || undefined });
        ctx.toast('Override set');
        await load();
      },
    }));
  };
  load().catch((e) => showError(e, [], err));
}
