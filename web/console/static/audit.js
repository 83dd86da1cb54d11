// The audit trail, newest first, 50 entries a page.
import { call } from './api.js';
import { el, table, fmtTime, showError } from './ui.js';

export function render(main) {
  const err = el('p', { class: 'err', role: 'alert' });
  const list = el('section', { id: 'audit', 'aria-label': 'Audit trail' });
  const nav = el('div', { class: 'row' });
  main.append(el('h1', { text: 'Audit trail' }), err, list, nav);
  const pages = [0];
  const load = async (before) => {
    const q = before ? `?before=${before}&limit=50` : '?limit=50';
    const { entries, next } = await call('GET', `/audit${q}`);
    list.replaceChildren(table('Audit entries, newest first', ['#', 'Time', 'Actor', 'From', 'Action', 'Target', 'Outcome', 'Detail'],
      entries.map((e) => [String(e.seq), fmtTime(e.time), e.actor, e.remote || '', el('span', { class: 'mono nowrap', text: e.action }),
        el('span', { class: 'mono pairs' }, (e.target || '').split(' ').filter(Boolean).map((p) => el('span', { text: p }))), e.outcome, el('span', { class: 'detail', text: e.detail || '' })]), 'No entry.'));
    nav.replaceChildren(
      pages.length > 1 ? el('button', { type: 'button', class: 'secondary', text: 'Newer', onclick: () => { pages.pop(); load(pages[pages.length - 1]).catch((x) => showError(x, [], err)); } }) : '',
      next ? el('button', { type: 'button', class: 'secondary', text: 'Older', onclick: () => { pages.push(next); load(next).catch((x) => showError(x, [], err)); } }) : '');
  };
  load(0).catch((e) => showError(e, [], err));
}
