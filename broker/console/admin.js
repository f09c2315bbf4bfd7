// Admin: users (create, delete, reset password), grants on a queue or topic, access keys (the
// secret is shown once, in the page, never in a URL), and the cluster's nodes and leader.
// Shown to admins only; the broker refuses these calls to anyone else anyway.

import { api, seg } from './api.js';
import { confirmed, failed, field, fill, form, h, table, toast } from './ui.js';

export function adminPage(main) {
  const users = h('tbody');
  const keys = h('div', { id: 'keys' });
  const secret = h('div', { id: 'new-secret' });
  const nodes = h('div', { id: 'nodes' });
  let stopped = false;

  async function refresh() {
    try {
      const [u, c] = await Promise.all([api('GET', '/v1/users'), api('GET', '/v1/cluster')]);
      if (stopped) return;
      fill(users, u.users.map(userRow));
      fill(
        nodes,
        table(
          ['node', 'address', 'version', 'started', ''],
          c.nodes.map((n) =>
            h(
              'tr',
              { dataset: { node: n.id } },
              h('td', { class: 'mono' }, n.id),
              h('td', {}, n.address),
              h('td', {}, n.version),
              h('td', {}, n.started_at),
              h('td', {}, n.id === c.leader ? h('strong', { class: 'leader' }, 'leader') : ''),
            ),
          ),
          { id: 'nodes-table' },
        ),
      );
    } catch (e) {
      if (!stopped) failed(e);
    }
  }

  function userRow(u) {
    return h(
      'tr',
      { dataset: { user: u.username } },
      h('td', {}, u.username),
      h('td', {}, u.role),
      h('td', {}, u.created_at),
      h(
        'td',
        { class: 'actions' },
        h('button', { type: 'button', class: 'secondary keys', onclick: () => showKeys(u.username) }, 'Access keys'),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary reset',
            onclick: () => resetPassword(u.username),
          },
          'Reset password',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'danger delete',
            onclick: async () => {
              if (!(await confirmed(`Delete user ${u.username}? Their tokens stop working at once.`, 'Delete'))) return;
              try {
                await api('DELETE', '/v1/users/' + seg(u.username));
                toast(`user ${u.username} deleted`);
                await refresh();
              } catch (e) {
                failed(e);
              }
            },
          },
          'Delete',
        ),
      ),
    );
  }

  function resetPassword(username) {
    fill(
      secret,
      form(
        { class: 'card', id: 'reset-password' },
        [
          h('h3', {}, `New password for ${username}`),
          field('password', h('input', { name: 'password', type: 'password', minlength: 12, required: true, autocomplete: 'new-password' }), '12 to 256 characters; their tokens stop working'),
          h('button', { type: 'submit' }, 'Set password'),
        ],
        async (v) => {
          await api('PUT', `/v1/users/${seg(username)}/password`, { password: v.password || '' });
          fill(secret);
          toast(`password of ${username} changed`);
        },
      ),
    );
  }

  async function showKeys(username) {
    try {
      const r = await api('GET', `/v1/users/${seg(username)}/access-keys`);
      fill(
        keys,
        h('h3', {}, `Access keys of ${username}`),
        table(
          ['access key id', 'created', ''],
          r.access_keys.map((k) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, k.access_key_id),
              h('td', {}, k.created_at),
              h(
                'td',
                {},
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    onclick: async () => {
                      if (!(await confirmed(`Delete access key ${k.access_key_id}?`, 'Delete'))) return;
                      try {
                        await api('DELETE', `/v1/users/${seg(username)}/access-keys/${seg(k.access_key_id)}`);
                        await showKeys(username);
                      } catch (e) {
                        failed(e);
                      }
                    },
                  },
                  'Delete',
                ),
              ),
            ),
          ),
        ),
        h(
          'button',
          {
            type: 'button',
            id: 'create-key',
            onclick: async () => {
              try {
                const k = await api('POST', `/v1/users/${seg(username)}/access-keys`);
                // Shown this once: the broker keeps it sealed and never returns it again.
                fill(
                  secret,
                  h(
                    'div',
                    { class: 'card secret', role: 'status' },
                    h('p', {}, 'Copy the secret now: it is not shown again.'),
                    h('p', {}, 'access key id ', h('code', { id: 'new-key-id' }, k.access_key_id)),
                    h('p', {}, 'secret access key ', h('code', { id: 'new-key-secret' }, k.secret_access_key)),
                    h('button', { type: 'button', class: 'secondary', onclick: () => fill(secret) }, 'Done'),
                  ),
                );
                await showKeys(username);
              } catch (e) {
                failed(e);
              }
            },
          },
          'Create access key',
        ),
      );
    } catch (e) {
      failed(e);
    }
  }

  const grantForm = form(
    { id: 'grant-form' },
    [
      h(
        'div',
        { class: 'grid' },
        field('on', h('select', { name: 'kind' }, h('option', { value: 'queues' }, 'queue'), h('option', { value: 'topics' }, 'topic'))),
        field('name', h('input', { name: 'name', required: true })),
        field('user', h('input', { name: 'user', required: true })),
        field('publish', h('input', { name: 'publish', type: 'checkbox' })),
        field('consume', h('input', { name: 'consume', type: 'checkbox' })),
      ),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'submit' }, 'Grant'),
        h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          onclick: async (ev) => {
            const f = ev.target.form;
            const v = { kind: f.elements.kind.value, name: f.elements.name.value, user: f.elements.user.value };
            try {
              await api('DELETE', `/v1/${v.kind}/${seg(v.name)}/grants/${seg(v.user)}`);
              toast(`revoked ${v.user}'s grant on ${v.name}`);
            } catch (e) {
              failed(e);
            }
          },
        },
        'Revoke',
        ),
      ),
    ],
    async (v) => {
      await api('PUT', `/v1/${v.kind}/${seg(v.name || '')}/grants/${seg(v.user || '')}`, { publish: v.publish, consume: v.consume });
      toast(`granted ${v.user} on ${v.name}`);
    },
  );

  fill(
    main,
    h('h1', {}, 'Admin'),
    h('h2', {}, 'Users'),
    table(['username', 'role', 'created', ''], [], { id: 'users' }),
    secret,
    keys,
    h(
      'details',
      { class: 'card', id: 'create-user-box' },
      h('summary', {}, 'Create a user'),
      form(
        { id: 'create-user' },
        [
          h(
            'div',
            { class: 'grid' },
            field('username', h('input', { name: 'username', required: true, autocomplete: 'off' })),
            field('password', h('input', { name: 'password', type: 'password', minlength: 12, required: true, autocomplete: 'new-password' }), '12 to 256 characters'),
            field('role', h('select', { name: 'role' }, h('option', {}, 'user'), h('option', {}, 'admin'))),
          ),
          h('button', { type: 'submit' }, 'Create user'),
        ],
        async (v, f) => {
          await api('POST', '/v1/users', { username: v.username, password: v.password, role: v.role });
          toast(`user ${v.username} created`);
          f.reset();
          await refresh();
        },
      ),
    ),
    h('h2', {}, 'Grants'),
    h('p', { class: 'muted' }, 'On a restricted queue or topic only the owner, admins and grantees may publish or consume.'),
    h('section', { class: 'card' }, grantForm),
    h('h2', {}, 'Cluster'),
    nodes,
  );
  main.querySelector('#users tbody').replaceWith(users);
  refresh();
  const timer = setInterval(refresh, 10000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
