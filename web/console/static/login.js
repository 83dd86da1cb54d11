// Login, and the password change a gateway-made password needs first.
import { call, setSession } from './api.js';
import { el, form } from './ui.js';

export function render(main, ctx) {
  main.append(el('h1', { text: 'Log in' }));
  if (ctx.message) main.append(el('p', { class: 'muted', text: ctx.message }));
  const f = form({
    id: 'login-form', title: 'Administrator', submit: 'Log in', className: 'card stack',
    fields: [
      { name: 'username', label: 'Username', value: 'admin', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
    ],
    onSubmit: async (v) => {
      const s = await call('POST', '/auth/session', { username: v.username, password: v.password });
      if (s.password_change_required) {
        setSession(s.csrf_token);
        main.replaceChildren();
        changePassword(main, ctx, v.password);
        return;
      }
      ctx.loggedIn(s);
    },
  });
  main.append(f);
  f.fields.password.input.focus();
}

function changePassword(main, ctx, old) {
  main.append(el('h1', { text: 'Choose a new password' }),
    el('p', { class: 'muted', text: 'The gateway made this password: change it before anything else (12 characters or more).' }));
  const f = form({
    id: 'password-form', title: 'New password', submit: 'Change password', className: 'card stack',
    fields: [
      { name: 'old_password', label: 'Current password', type: 'password', value: old, autocomplete: 'current-password' },
      { name: 'new_password', label: 'New password', type: 'password', autocomplete: 'new-password' },
      { name: 'confirm', label: 'New password again', type: 'password', autocomplete: 'new-password' },
    ],
    onSubmit: async (v, fe) => {
      if (v.new_password !== v.confirm) {
        fe.fields.confirm.err.textContent = 'the two new passwords differ';
        fe.fields.confirm.input.setAttribute('aria-invalid', 'true');
        return;
      }
      const s = await call('POST', '/auth/password', { old_password: v.old_password, new_password: v.new_password });
      ctx.loggedIn(s);
    },
  });
  main.append(f);
  f.fields.new_password.input.focus();
}
