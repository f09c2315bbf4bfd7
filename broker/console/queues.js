// Queues: the list (stats, rates with sparklines, DLQ links, create/purge/delete) and a queue's
// page (config and edit, peek, send, receive-and-ack, redrive for a dead-letter queue).

import { api, Rates, seg } from './api.js';
import {
  age, attributesText, confirmed, failed, field, fill, form, h, parseAttributes, rate, sparkline, table, toast,
} from './ui.js';

/** How often the list and a queue's page poll (stats are exact counts, so this is cheap). */
const POLL_MS = 5000;
/** Rate samples kept per queue: the last five minutes at POLL_MS. */
const HISTORY = 60;

const rates = new Rates();
/** queue -> {in: [...], out: [...]}, oldest first; kept across page changes. */
const history = new Map();

function record(name) {
  const hist = history.get(name) || { in: [], out: [] };
  hist.in.push(rates.rate('sent', name));
  hist.out.push(rates.rate('received', name));
  if (hist.in.length > HISTORY) hist.in.shift();
  if (hist.out.length > HISTORY) hist.out.shift();
  history.set(name, hist);
  return hist;
}

const num = (v) => (v === null || v === undefined ? '' : String(v));
const optNum = (v) => (v === undefined ? undefined : Number(v));

/** The inputs of every queue attribute; `q` gives current values (for edit). */
function attributeFields(q = {}, queues = []) {
  const dlqs = h(
    'select',
    { name: 'dead_letter_queue', id: 'q-dead_letter_queue' },
    h('option', { value: '' }, '(none)'),
    queues
      .filter((o) => o.name !== q.name)
      .map((o) => h('option', { value: o.name, selected: o.name === q.dead_letter_queue }, o.name)),
  );
  const n = (name, value, hint, min = 0) =>
    field(name.replace(/_/g, ' '), h('input', { name, id: 'q-' + name, type: 'number', min, value: num(value) }), hint);
  return [
    n('visibility_timeout_s', q.visibility_timeout_s, 'default 30'),
    n('max_receives', q.max_receives, 'empty: unlimited', 1),
    field('dead letter queue', dlqs),
    n('delay_s', q.delay_s, 'default 0'),
    n('retention_s', q.retention_s, 'default 345600 (4 days)'),
    n('max_message_bytes', q.max_message_bytes, 'default 262144, at most 1 MiB', 1),
    n('receive_wait_s', q.receive_wait_s, 'default long poll of a receive without wait_s (0 to 20)'),
    field(
      'access',
      h(
        'select',
        { name: 'access', id: 'q-access' },
        ['authenticated', 'restricted'].map((a) => h('option', { value: a, selected: q.access === a }, a)),
      ),
      'restricted: only owner, admins and grantees',
    ),
  ];
}

/** The body of a create or patch from the form's values; `patch` sends nulls to clear. */
function spec(v, patch) {
  const out = {};
  for (const k of ['visibility_timeout_s', 'delay_s', 'retention_s', 'max_message_bytes', 'receive_wait_s']) {
    if (v[k] !== undefined) out[k] = optNum(v[k]);
  }
  if (v.max_receives !== undefined) out.max_receives = optNum(v.max_receives);
  else if (patch) out.max_receives = null;
  if (v.dead_letter_queue !== undefined) out.dead_letter_queue = v.dead_letter_queue;
  else if (patch) out.dead_letter_queue = null;
  if (v.access) out.access = v.access;
  if (v.fifo) out.fifo = true;
  if (v.content_based_dedup) out.content_based_dedup = true;
  if (!patch) {
    const tags = parseAttributes(v.tags);
    if (Object.keys(tags).length) out.tags = tags;
  }
  return out;
}

/** Keeps a dead-letter-queue select's options equal to the queues there are, keeping its choice. */
function dlqOptions(select, queues, except) {
  if (!select) return;
  const chosen = select.value;
  fill(
    select,
    h('option', { value: '' }, '(none)'),
    queues.filter((o) => o.name !== except).map((o) => h('option', { value: o.name, selected: o.name === chosen }, o.name)),
  );
}

export function queueList(main) {
  const body = h('tbody');
  const status = h('p', { class: 'muted', id: 'queues-status' }, 'Loading…');
  let queues = [];
  let stopped = false;
  const createForm = h('div');

  function renderCreate() {
    fill(
      createForm,
      h(
        'details',
        { class: 'card', id: 'create-queue-box' },
        h('summary', {}, 'Create a queue'),
        form(
          { id: 'create-queue' },
          [
            field('name', h('input', { name: 'name', id: 'new-queue-name', required: true, pattern: '[A-Za-z0-9_\\-]{1,80}' })),
            h('div', { class: 'grid' }, attributeFields({}, queues)),
            field('tags', h('textarea', { name: 'tags', rows: 2, placeholder: 'key=value, one a line' })),
            field('FIFO', h('input', { type: 'checkbox', name: 'fifo' }), 'cannot change later'),
            field('content-based dedup', h('input', { type: 'checkbox', name: 'content_based_dedup' })),
            h('button', { type: 'submit', id: 'create-queue-submit' }, 'Create'),
          ],
          async (v, f) => {
            await api('PUT', '/v1/queues/' + seg(v.name || ''), spec(v, false));
            toast(`queue ${v.name} created`);
            f.reset();
            await refresh();
          },
        ),
      ),
    );
  }

  async function refresh() {
    try {
      const [list] = await Promise.all([api('GET', '/v1/queues'), rates.sample().catch(() => {})]);
      queues = list.queues.sort((a, b) => a.name.localeCompare(b.name));
      const infos = await Promise.all(
        queues.map((q) => api('GET', '/v1/queues/' + seg(q.name)).catch(() => q)),
      );
      if (stopped) return;
      if (!createForm.firstChild) renderCreate();
      else dlqOptions(createForm.querySelector('select[name=dead_letter_queue]'), queues);
      fill(body, infos.map(row));
      fill(status, queues.length ? '' : 'No queues you may see yet.');
    } catch (e) {
      if (!stopped) failed(e);
    }
  }

  function row(q) {
    const s = q.stats || {};
    const hist = record(q.name);
    const name = q.name;
    return h(
      'tr',
      { dataset: { queue: name } },
      h('td', {}, h('a', { href: '#/queues/' + seg(name), class: 'qname' }, name)),
      h('td', { class: 'num available' }, num(s.available)),
      h('td', { class: 'num in_flight' }, num(s.in_flight)),
      h('td', { class: 'num delayed' }, num(s.delayed)),
      h('td', { class: 'num oldest' }, age(s.oldest_age_s)),
      h('td', { class: 'num rate' }, rate(hist.in.at(-1) || 0), sparkline(hist.in, 'messages in per second')),
      h('td', { class: 'num rate' }, rate(hist.out.at(-1) || 0), sparkline(hist.out, 'messages out per second')),
      h('td', {}, q.dead_letter_queue ? h('a', { href: '#/queues/' + seg(q.dead_letter_queue), class: 'dlq' }, q.dead_letter_queue) : '–'),
      h(
        'td',
        { class: 'actions' },
        h('button', { type: 'button', class: 'secondary purge', onclick: () => purge(name, refresh) }, 'Purge'),
        h('button', { type: 'button', class: 'danger delete', onclick: () => remove(name, refresh) }, 'Delete'),
      ),
    );
  }

  fill(
    main,
    h('div', { class: 'title' }, h('h1', {}, 'Queues'), h('button', { type: 'button', class: 'secondary', onclick: refresh }, 'Refresh')),
    table(
      ['name', 'available', 'in flight', 'delayed', 'oldest', 'in/s', 'out/s', 'DLQ', ''],
      [],
      { id: 'queues' },
    ),
    status,
    createForm,
  );
  main.querySelector('#queues tbody').replaceWith(body);
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

async function purge(name, then) {
  if (!(await confirmed(`Drop every message of queue ${name}?`, 'Purge'))) return;
  try {
    await api('POST', `/v1/queues/${seg(name)}/purge`);
    toast(`queue ${name} purged`);
    await then();
  } catch (e) {
    failed(e);
  }
}

async function remove(name, then) {
  if (!(await confirmed(`Delete queue ${name} and all its messages?`, 'Delete'))) return;
  try {
    await api('DELETE', `/v1/queues/${seg(name)}`);
    toast(`queue ${name} deleted`);
    await then();
  } catch (e) {
    failed(e);
  }
}

function messageRows(messages, extra) {
  return messages.map((m) =>
    h(
      'tr',
      { class: 'message', dataset: { id: m.id } },
      h('td', { class: 'mono' }, m.id),
      h('td', { class: 'body' }, m.body),
      h('td', {}, [m.group ? `group ${m.group}${m.sequence ? ' #' + m.sequence : ''}` : '', attributesText(m.attributes)].filter(Boolean).join(', ')),
      h('td', { class: 'num receive_count' }, String(m.receive_count)),
      h('td', {}, m.sent_at),
      extra(m),
    ),
  );
}

export function queuePage(main, name) {
  const path = '/v1/queues/' + seg(name);
  let stopped = false;
  const stats = h('dl', { class: 'stats', id: 'queue-stats' });
  const config = h('div', { id: 'queue-config' });
  const peeked = h('div', { id: 'peek-result' });
  const received = h('div', { id: 'received' });
  const dlqBox = h('div', { id: 'dlq-box' });
  const stat = (id, label, value) => [h('dt', {}, label), h('dd', { id: 'stat-' + id }, value)];

  async function refresh() {
    try {
      const [q, list] = await Promise.all([api('GET', path), api('GET', '/v1/queues')]);
      if (stopped) return;
      const s = q.stats || {};
      fill(
        stats,
        stat('available', 'available', num(s.available)),
        stat('in_flight', 'in flight', num(s.in_flight)),
        stat('delayed', 'delayed', num(s.delayed)),
        stat('oldest', 'oldest', age(s.oldest_age_s)),
      );
      if (!config.firstChild) renderConfig(q, list.queues);
      const sources = list.queues.filter((o) => o.dead_letter_queue === name).map((o) => o.name);
      renderDlq(sources);
    } catch (e) {
      if (!stopped) failed(e);
    }
  }

  function renderConfig(q, queues) {
    fill(
      config,
      h('p', { class: 'muted' }, `owner ${q.owner}, created ${q.created_at}`),
      h(
        'details',
        { class: 'card' },
        h('summary', {}, 'Edit attributes'),
        form(
          { id: 'edit-queue' },
          [h('div', { class: 'grid' }, attributeFields(q, queues)), h('button', { type: 'submit' }, 'Save')],
          async (v) => {
            await api('PATCH', path, spec(v, true));
            toast('saved');
            await refresh();
          },
        ),
      ),
    );
  }

  function renderDlq(sources) {
    if (!sources.length) {
      fill(dlqBox);
      return;
    }
    if (dlqBox.firstChild) return;
    fill(
      dlqBox,
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Dead letters'),
        h('p', {}, `Dead-letter queue of ${sources.join(', ')}. Redrive sends every message not in flight back to its source queue.`),
        h(
          'button',
          {
            type: 'button',
            id: 'redrive',
            onclick: async () => {
              try {
                const r = await api('POST', path + '/redrive', {});
                toast(`redrive moved ${r.moved} message(s)`);
                const out = document.getElementById('redrive-result');
                if (out) out.textContent = `moved ${r.moved}`;
                await refresh();
              } catch (e) {
                failed(e);
              }
            },
          },
          'Redrive',
        ),
        h('span', { id: 'redrive-result', class: 'muted' }),
      ),
    );
  }

  const peekForm = form(
    { id: 'peek-form', class: 'inline' },
    [
      field(
        'state',
        h('select', { name: 'state', id: 'peek-state' }, ['available', 'in_flight', 'delayed'].map((s) => h('option', { value: s }, s))),
      ),
      field('limit', h('input', { name: 'limit', type: 'number', min: 1, max: 100, value: 10 })),
      h('button', { type: 'submit', id: 'peek' }, 'Peek'),
    ],
    async (v) => {
      const r = await api('GET', `${path}/messages?state=${encodeURIComponent(v.state)}&limit=${encodeURIComponent(v.limit || 10)}`);
      fill(
        peeked,
        r.messages.length
          ? table(['id', 'body', 'attributes', 'receives', 'sent at', 'visible at'], messageRows(r.messages, (m) => h('td', {}, m.visible_at)), { id: 'peeked' })
          : h('p', { class: 'muted', id: 'peeked-empty' }, `No ${v.state.replace('_', ' ')} messages.`),
      );
      await refresh();
    },
  );

  const sendForm = form(
    { id: 'send-form' },
    [
      field('body', h('textarea', { name: 'body', id: 'send-body', rows: 3, required: true })),
      field('attributes', h('textarea', { name: 'attributes', id: 'send-attributes', rows: 2, placeholder: 'key=value, one a line' })),
      h(
        'div',
        { class: 'grid' },
        field('delay_s', h('input', { name: 'delay_s', type: 'number', min: 0 })),
        field('dedup_id', h('input', { name: 'dedup_id' })),
        field('group', h('input', { name: 'group', id: 'send-group' }), 'required on FIFO queues'),
      ),
      h('button', { type: 'submit', id: 'send' }, 'Send'),
    ],
    async (v) => {
      const m = { body: v.body || '' };
      const attributes = parseAttributes(v.attributes);
      if (Object.keys(attributes).length) m.attributes = attributes;
      if (v.delay_s !== undefined) m.delay_s = Number(v.delay_s);
      if (v.dedup_id !== undefined) m.dedup_id = v.dedup_id;
      if (v.group !== undefined) m.group = v.group;
      const r = await api('POST', path + '/messages', m);
      toast(`sent ${r.id}`);
      document.getElementById('send-body').value = '';
      await refresh();
    },
  );

  const receiveForm = form(
    { id: 'receive-form', class: 'inline' },
    [
      field('max', h('input', { name: 'max', type: 'number', min: 1, max: 100, value: 1 })),
      h('button', { type: 'submit', id: 'receive' }, 'Receive'),
    ],
    async (v) => {
      const r = await api('POST', path + '/receive', { max: Number(v.max || 1) });
      if (!r.messages.length) {
        fill(received, h('p', { class: 'muted', id: 'received-empty' }, 'Nothing available.'));
      } else {
        fill(
          received,
          h('p', { class: 'muted' }, 'Received: invisible to others until acked or their visibility timeout ends.'),
          table(['id', 'body', 'attributes', 'receives', 'sent at', ''], messageRows(r.messages, (m) => h('td', {}, ackButton(m))), { id: 'received-table' }),
        );
      }
      await refresh();
    },
  );

  function ackButton(m) {
    const b = h(
      'button',
      {
        type: 'button',
        class: 'ack',
        onclick: async () => {
          try {
            const r = await api('POST', path + '/ack', { receipts: [m.receipt] });
            const res = r.results[0];
            if (res.error) throw Object.assign(new Error(res.error.message), { code: res.error.code });
            b.replaceWith(h('span', { class: 'acked' }, 'acked'));
            toast('acked ' + m.id);
            await refresh();
          } catch (e) {
            failed(e);
          }
        },
      },
      'Ack',
    );
    return b;
  }

  fill(
    main,
    h('p', {}, h('a', { href: '#/queues' }, '← Queues')),
    h('div', { class: 'title' }, h('h1', { id: 'queue-name' }, name),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => purge(name, refresh) }, 'Purge'),
        h('button', { type: 'button', class: 'danger', onclick: () => remove(name, async () => { location.hash = '#/queues'; }) }, 'Delete'))),
    stats,
    config,
    dlqBox,
    h('section', { class: 'card' }, h('h2', {}, 'Peek'), h('p', { class: 'muted' }, 'Shows messages without receiving them: no visibility, receive count or order changes.'), peekForm, peeked),
    h('div', { class: 'two' },
      h('section', { class: 'card' }, h('h2', {}, 'Send'), sendForm),
      h('section', { class: 'card' }, h('h2', {}, 'Receive'), receiveForm, received)),
  );
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
