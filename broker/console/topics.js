// Topics: the list (create, delete) and a topic's page: publish, subscriptions with filter and
// lag (create, delete), and a live tail of a subscription over its SSE stream, read with fetch()
// so the token stays in a header.

import { api, seg, stream } from './api.js';
import { attributesText, confirmed, failed, field, fill, form, h, parseAttributes, table, toast } from './ui.js';

const POLL_MS = 5000;
/** Lines a tail keeps on screen. */
const TAIL_LINES = 200;

export function topicList(main) {
  const body = h('tbody');
  let stopped = false;

  async function refresh() {
    try {
      const list = await api('GET', '/v1/topics');
      const infos = await Promise.all(
        list.topics.map((t) => api('GET', '/v1/topics/' + seg(t.name)).catch(() => t)),
      );
      if (stopped) return;
      fill(
        body,
        infos
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((t) =>
            h(
              'tr',
              { dataset: { topic: t.name } },
              h('td', {}, h('a', { href: '#/topics/' + seg(t.name) }, t.name)),
              h('td', { class: 'num' }, t.stats ? String(t.stats.messages) : ''),
              h('td', { class: 'num' }, t.stats ? String(t.stats.subscriptions) : ''),
              h('td', {}, t.access),
              h('td', {}, t.owner),
              h(
                'td',
                { class: 'actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    onclick: async () => {
                      if (!(await confirmed(`Delete topic ${t.name}, its messages and subscriptions?`, 'Delete'))) return;
                      try {
                        await api('DELETE', '/v1/topics/' + seg(t.name));
                        toast(`topic ${t.name} deleted`);
                        await refresh();
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
      );
    } catch (e) {
      if (!stopped) failed(e);
    }
  }

  fill(
    main,
    h('div', { class: 'title' }, h('h1', {}, 'Topics'), h('button', { type: 'button', class: 'secondary', onclick: refresh }, 'Refresh')),
    table(['name', 'retained', 'subscriptions', 'access', 'owner', ''], [], { id: 'topics' }),
    h(
      'details',
      { class: 'card' },
      h('summary', {}, 'Create a topic'),
      form(
        { id: 'create-topic' },
        [
          field('name', h('input', { name: 'name', id: 'new-topic-name', required: true })),
          h(
            'div',
            { class: 'grid' },
            field('retention_s', h('input', { name: 'retention_s', type: 'number', min: 0 }), 'default 604800 (7 days)'),
            field('max_message_bytes', h('input', { name: 'max_message_bytes', type: 'number', min: 1 }), 'default 262144'),
            field('access', h('select', { name: 'access' }, h('option', {}, 'authenticated'), h('option', {}, 'restricted'))),
          ),
          h('button', { type: 'submit' }, 'Create'),
        ],
        async (v, f) => {
          const spec = { access: v.access };
          if (v.retention_s !== undefined) spec.retention_s = Number(v.retention_s);
          if (v.max_message_bytes !== undefined) spec.max_message_bytes = Number(v.max_message_bytes);
          await api('PUT', '/v1/topics/' + seg(v.name || ''), spec);
          toast(`topic ${v.name} created`);
          f.reset();
          await refresh();
        },
      ),
    ),
  );
  main.querySelector('#topics tbody').replaceWith(body);
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

export function topicPage(main, name) {
  const path = '/v1/topics/' + seg(name);
  const subs = h('tbody');
  const tailBox = h('section', { class: 'card', id: 'tail-box' });
  let stopped = false;
  let tail = null; // the AbortController of the running tail

  async function refresh() {
    try {
      const r = await api('GET', path + '/subscriptions');
      if (stopped) return;
      fill(
        subs,
        r.subscriptions.map((s) =>
          h(
            'tr',
            { dataset: { subscription: s.name } },
            h('td', {}, s.name),
            h('td', {}, attributesText(s.filter) || '–'),
            h('td', { class: 'num lag' }, s.lag === undefined || s.lag === null ? '' : String(s.lag)),
            h('td', {}, s.dead_letter_queue || '–'),
            h(
              'td',
              { class: 'actions' },
              h('button', { type: 'button', class: 'tail', onclick: () => startTail(s.name) }, 'Tail'),
              h(
                'button',
                {
                  type: 'button',
                  class: 'danger',
                  onclick: async () => {
                    if (!(await confirmed(`Delete subscription ${s.name}?`, 'Delete'))) return;
                    try {
                      await api('DELETE', `${path}/subscriptions/${seg(s.name)}`);
                      await refresh();
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
      );
    } catch (e) {
      if (!stopped) failed(e);
    }
  }

  function stopTail() {
    if (tail) tail.abort();
    tail = null;
  }

  function startTail(sub) {
    stopTail();
    const controller = new AbortController();
    tail = controller;
    const lines = h('ol', { class: 'tail', id: 'tail-lines' });
    const state = h('span', { class: 'muted', id: 'tail-state' }, 'connecting…');
    fill(
      tailBox,
      h('h2', {}, `Live tail of ${sub}`),
      h(
        'p',
        { class: 'muted' },
        'Messages are delivered to this page as to any consumer of the subscription (not acked: they come back after the ack deadline). ',
        state,
      ),
      h('button', { type: 'button', id: 'tail-stop', class: 'secondary', onclick: () => { stopTail(); state.textContent = 'stopped'; } }, 'Stop'),
      lines,
    );
    stream(
      `${path}/subscriptions/${seg(sub)}/stream`,
      (ev) => {
        state.textContent = 'live';
        let m;
        try {
          m = JSON.parse(ev.data);
        } catch (_) {
          m = { id: ev.id, body: ev.data };
        }
        lines.prepend(h('li', {}, h('span', { class: 'mono' }, m.id || ''), ' ', h('span', { class: 'body' }, m.body), ' ', h('span', { class: 'muted' }, attributesText(m.attributes))));
        while (lines.children.length > TAIL_LINES) lines.lastChild.remove();
      },
      controller.signal,
    ).then(
      () => { if (tail === controller) state.textContent = 'ended'; },
      (e) => {
        if (e.name === 'AbortError') return;
        state.textContent = 'stopped';
        failed(e);
      },
    );
    state.textContent = 'live';
  }

  fill(
    main,
    h('p', {}, h('a', { href: '#/topics' }, '← Topics')),
    h('h1', { id: 'topic-name' }, name),
    h('h2', {}, 'Subscriptions'),
    table(['name', 'filter', 'lag', 'DLQ', ''], [], { id: 'subscriptions' }),
    tailBox,
    h(
      'div',
      { class: 'two' },
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Publish'),
        form(
          { id: 'publish-form' },
          [
            field('body', h('textarea', { name: 'body', id: 'publish-body', rows: 3, required: true })),
            field('attributes', h('textarea', { name: 'attributes', rows: 2, placeholder: 'key=value, one a line' })),
            h('button', { type: 'submit', id: 'publish' }, 'Publish'),
          ],
          async (v, f) => {
            const m = { body: v.body || '' };
            const attributes = parseAttributes(v.attributes);
            if (Object.keys(attributes).length) m.attributes = attributes;
            const r = await api('POST', path + '/messages', m);
            toast(`published ${r.id}`);
            f.elements.body.value = '';
            await refresh();
          },
        ),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Subscribe'),
        form(
          { id: 'subscribe-form' },
          [
            field('name', h('input', { name: 'name', required: true })),
            field('start', h('select', { name: 'start' }, h('option', {}, 'latest'), h('option', {}, 'earliest'))),
            field('filter', h('textarea', { name: 'filter', rows: 2, placeholder: 'attr=value, one a line (all must match)' })),
            h(
              'div',
              { class: 'grid' },
              field('ack_deadline_s', h('input', { name: 'ack_deadline_s', type: 'number', min: 0 })),
              field('max_receives', h('input', { name: 'max_receives', type: 'number', min: 1 })),
              field('dead_letter_queue', h('input', { name: 'dead_letter_queue' })),
              field('no_local', h('input', { name: 'no_local', type: 'checkbox' })),
            ),
            h('button', { type: 'submit' }, 'Subscribe'),
          ],
          async (v, f) => {
            const spec = { start: v.start, no_local: v.no_local };
            const filter = parseAttributes(v.filter);
            if (Object.keys(filter).length) spec.filter = filter;
            if (v.ack_deadline_s !== undefined) spec.ack_deadline_s = Number(v.ack_deadline_s);
            if (v.max_receives !== undefined) spec.max_receives = Number(v.max_receives);
            if (v.dead_letter_queue !== undefined) spec.dead_letter_queue = v.dead_letter_queue;
            await api('PUT', `${path}/subscriptions/${seg(v.name || '')}`, spec);
            toast(`subscription ${v.name} created`);
            f.reset();
            await refresh();
          },
        ),
      ),
    ),
  );
  main.querySelector('#subscriptions tbody').replaceWith(subs);
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    stopTail();
  };
}
