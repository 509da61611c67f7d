// CoffeeBuddy playground: renders the Slack stand-in's state for one person
// and turns what they do into the requests Slack would send.
//
// Safety: every piece of text from a message, view or person goes into the
// page as a DOM text node (append(string) / textContent), never as HTML.
'use strict';

(() => {
  const EMOJI = {
    coffee: '☕', runner: '🏃', clock3: '🕒', clock1: '🕐', clock2: '🕑', clock4: '🕓', clock5: '🕔',
    clock6: '🕕', clock7: '🕖', clock8: '🕗', clock9: '🕘', clock10: '🕙', clock11: '🕚', clock12: '🕛',
    memo: '📝', scales: '⚖️', alarm_clock: '⏰', white_check_mark: '✅', heavy_check_mark: '✔️', x: '❌', tada: '🎉',
    warning: '⚠️', wave: '👋', package: '📦', bell: '🔔', lock: '🔒', information_source: 'ℹ️',
    hourglass: '⌛', hourglass_flowing_sand: '⏳', rocket: '🚀', raised_hands: '🙌', pray: '🙏', star: '⭐',
    '+1': '👍', thumbsup: '👍', no_entry: '⛔', no_entry_sign: '🚫', gear: '⚙️', house: '🏠',
    bar_chart: '📊', trophy: '🏆', cup_with_straw: '🥤', tea: '🍵', truck: '🚚', handshake: '🤝',
    sparkles: '✨', eyes: '👀', speech_balloon: '💬', calendar: '📅', stopwatch: '⏱️', shield: '🛡️',
    busts_in_silhouette: '👥', bust_in_silhouette: '👤', pushpin: '📌', mag: '🔍', repeat: '🔁',
    arrows_counterclockwise: '🔄', bulb: '💡', zzz: '💤', heart: '❤️', smile: '😄', slightly_smiling_face: '🙂',
    thinking_face: '🤔', croissant: '🥐', doughnut: '🍩', cookie: '🍪', muscle: '💪', ok_hand: '👌',
  };
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  let me = params.get('as') || localStorage.getItem('coffeebuddy-playground-as') || '';
  let current = params.get('c') || localStorage.getItem('coffeebuddy-playground-conv') || 'C0COFFEE';
  let snapshot = null;
  let modalKey = null;
  let modalViewId = null;
  const seen = {};
  let refreshing = false;
  let refreshAgain = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.append(c); // strings become text nodes
    }
    return node;
  }

  const decode = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const emojify = (s) => s.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);

  function personName(id) {
    if (!snapshot) return id;
    if (id === snapshot.bot.id) return snapshot.bot.name;
    const p = snapshot.people.find((x) => x.id === id);
    return p ? p.real_name : id;
  }

  function channelName(id) {
    const c = snapshot && snapshot.channels.find((x) => x.id === id);
    return c ? c.name : id;
  }

  // `<…>` control sequences: mentions, channels, broadcasts, dates, links.
  function controlSequence(inner) {
    const bar = inner.indexOf('|');
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? decode(inner.slice(bar + 1)) : '';
    if (target.startsWith('@')) return el('span', { class: 'mention' }, '@' + (label || personName(target.slice(1))));
    if (target.startsWith('#')) return el('span', { class: 'mention' }, '#' + (label || channelName(target.slice(1))));
    if (target === '!channel' || target === '!here' || target === '!everyone') {
      return el('span', { class: 'mention' }, '@' + target.slice(1));
    }
    if (target.startsWith('!')) return document.createTextNode(label || target.slice(1));
    if (/^(https?:\/\/|mailto:)/i.test(target)) {
      return el('a', { href: decode(target), rel: 'noopener noreferrer', target: '_blank' }, label || decode(target));
    }
    return document.createTextNode(decode('<' + inner + '>'));
  }

  const INLINE = /<([^<>\s][^<>]*)>|`([^`\n]+)`|\*([^*\n]+)\*|_([^_\n]+)_|~([^~\n]+)~|:([a-z0-9_+-]+):/g;

  function appendInline(parent, text) {
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) parent.append(decode(text.slice(last, m.index)));
      if (m[1] !== undefined) parent.append(controlSequence(m[1]));
      else if (m[2] !== undefined) parent.append(el('code', {}, decode(m[2])));
      else if (m[3] !== undefined) { const b = el('strong'); appendInline(b, m[3]); parent.append(b); }
      else if (m[4] !== undefined) { const i = el('em'); appendInline(i, m[4]); parent.append(i); }
      else if (m[5] !== undefined) { const s = el('del'); appendInline(s, m[5]); parent.append(s); }
      else if (m[6] !== undefined) parent.append(EMOJI[m[6]] || m[0]);
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.append(decode(text.slice(last)));
  }

  function appendMrkdwn(parent, text) {
    String(text || '').split('```').forEach((part, i) => {
      if (i % 2 === 1) { parent.append(el('pre', {}, decode(part.replace(/^\n/, '')))); return; }
      part.split('\n').forEach((line, j) => {
        if (j > 0) parent.append(el('br'));
        if (line.startsWith('&gt; ')) {
          const q = el('blockquote');
          appendInline(q, line.slice(5));
          parent.append(q);
        } else {
          appendInline(parent, line);
        }
      });
    });
  }

  function appendText(parent, obj) {
    if (!obj) return;
    if (obj.type === 'mrkdwn') appendMrkdwn(parent, obj.text);
    else parent.append(obj.emoji === false ? String(obj.text || '') : emojify(String(obj.text || '')));
  }

  function textOf(obj) {
    return obj ? String(obj.text || '') : '';
  }

  // A button (or a stand-in for an element the playground does not draw).
  function renderElement(element, blockId, where) {
    if (element.type !== 'button') {
      return el('span', { class: 'hint' }, `[${element.type} element]`);
    }
    const key = `${where.key}|${blockId || ''}|${element.action_id}`;
    const button = el('button', {
      type: 'button',
      class: element.style === 'primary' ? 'primary' : element.style === 'danger' ? 'danger' : '',
      'data-key': key,
    });
    appendText(button, element.text);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await api('click', { ...where.target, block_id: blockId || null, action_id: element.action_id });
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function renderBlock(block, where) {
    switch (block.type) {
      case 'section': {
        const body = el('div');
        if (block.text) appendText(body, block.text);
        if (Array.isArray(block.fields)) {
          const fields = el('div', { class: 'fields' });
          for (const f of block.fields) { const d = el('div'); appendText(d, f); fields.append(d); }
          body.append(fields);
        }
        if (block.accessory) {
          return el('div', { class: 'block section section-with-accessory' }, body,
            renderElement(block.accessory, block.block_id, where));
        }
        body.className = 'block section';
        return body;
      }
      case 'context': {
        const div = el('div', { class: 'block context' });
        (block.elements || []).forEach((e, i) => {
          if (i > 0) div.append(' ');
          if (e.type === 'image') div.append(el('span', { role: 'img', 'aria-label': e.alt_text || 'image' }, '🖼'));
          else { const s = el('span'); appendText(s, e); div.append(s); }
        });
        return div;
      }
      case 'divider':
        return el('hr', { class: 'block divider' });
      case 'header': {
        const h = el('div', { class: 'block header', role: 'heading', 'aria-level': '3' });
        appendText(h, block.text);
        return h;
      }
      case 'actions': {
        const div = el('div', { class: 'block actions', role: 'group' });
        for (const e of block.elements || []) div.append(renderElement(e, block.block_id, where));
        return div;
      }
      case 'image':
        return el('div', { class: 'block', role: 'img', 'aria-label': block.alt_text || 'image' }, `[image: ${block.alt_text || ''}]`);
      default:
        return el('div', { class: 'block hint' }, `[${block.type} block]`);
    }
  }

  function renderBlocks(parent, blocks, where) {
    for (const b of blocks || []) parent.append(renderBlock(b, where));
  }

  function formatTime(ts) {
    const secs = Number(String(ts).split('.')[0]);
    if (!Number.isFinite(secs)) return '';
    return new Date(secs * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function renderMessage(msg, conversationId) {
    const author = personName(msg.user);
    const li = el('li', { class: 'message' + (msg.ephemeral ? ' ephemeral' : ''), 'data-ts': msg.ts });
    const meta = el('div', { class: 'meta' }, el('span', { class: 'author' }, author));
    if (msg.bot_id) meta.append(el('span', { class: 'app-tag' }, 'APP'));
    meta.append(el('time', { datetime: new Date(Number(String(msg.ts).split('.')[0]) * 1000).toISOString() }, formatTime(msg.ts)));
    if (msg.edited) meta.append(el('span', { class: 'edited' }, '(edited)'));
    if (msg.ephemeral) meta.append(el('span', { class: 'only-you' }, 'Only visible to you'));
    li.append(meta);
    const where = {
      key: `${conversationId}|${msg.ts}`,
      target: { channel: conversationId, ts: msg.ts },
    };
    const body = el('div', { class: 'body' });
    if (Array.isArray(msg.blocks) && msg.blocks.length > 0) renderBlocks(body, msg.blocks, where);
    else appendMrkdwn(body, msg.text);
    li.append(body);
    const replies = msg.replies || [];
    if (replies.length > 0) {
      const list = el('ol');
      for (const r of replies) list.append(renderMessage(r, conversationId));
      li.append(el('details', { class: 'thread', open: true },
        el('summary', {}, replies.length === 1 ? '1 reply' : `${replies.length} replies`), list));
    }
    return li;
  }

  function conversationById(id) {
    if (!snapshot) return null;
    if (id === 'dm' || id === snapshot.dm.id) return snapshot.dm;
    return snapshot.channels.find((c) => c.id === id) || null;
  }

  function countVisible(conv) {
    return conv.messages.reduce((n, m) => n + 1 + (m.replies || []).length, 0);
  }

  function navButton(id, label, note, badge, spoken) {
    const name = [spoken || label, note, badge > 0 ? `${badge} new` : ''].filter(Boolean).join(', ');
    const b = el('button', { type: 'button', 'aria-current': current === id ? 'true' : 'false', 'data-key': `nav|${id}`, 'aria-label': name }, label);
    if (note) b.append(el('span', { class: 'note' }, ` ${note}`));
    if (badge > 0) b.append(el('span', { class: 'badge', 'aria-hidden': 'true' }, String(badge)));
    b.addEventListener('click', () => select(id));
    return el('li', {}, b);
  }

  function renderNav() {
    const channels = $('channels');
    channels.replaceChildren();
    for (const c of snapshot.channels) {
      const unseen = current === c.id ? 0 : Math.max(0, countVisible(c) - (seen[key(c.id)] || 0));
      channels.append(navButton(c.id, `# ${c.name}`, c.bot_member ? '' : '(bot not invited)', unseen, `#${c.name}`));
    }
    const dm = snapshot.dm;
    const dmUnseen = current === 'dm' ? 0 : Math.max(0, countVisible(dm) - (seen[key('dm')] || 0));
    $('dms').replaceChildren(navButton('dm', 'CoffeeBuddy', '', dmUnseen, 'CoffeeBuddy (direct messages)'));
    $('apps').replaceChildren(navButton('home', 'CoffeeBuddy — Home', '', 0));
  }

  const key = (id) => `${me}|${id}`;

  function renderConversation() {
    const list = $('messages');
    const home = $('home');
    const composer = $('composer');
    if (current === 'home') {
      $('conversation-title').textContent = 'CoffeeBuddy — Home';
      $('conversation-hint').textContent = 'The App Home tab: what CoffeeBuddy published for you with views.publish.';
      list.hidden = true;
      composer.hidden = true;
      home.hidden = false;
      home.replaceChildren();
      if (snapshot.home) {
        renderBlocks(home, snapshot.home.blocks, { key: `home|${snapshot.home.id}`, target: { view_id: snapshot.home.id } });
      } else {
        home.append(el('p', { class: 'hint' }, 'Nothing published yet.'));
      }
      return;
    }
    home.hidden = true;
    list.hidden = false;
    composer.hidden = false;
    const conv = conversationById(current) || snapshot.channels[0];
    if (!conv) return;
    if (conversationById(current) === null) current = conv.id;
    const isDm = conv === snapshot.dm;
    const title = isDm ? 'CoffeeBuddy (direct messages)' : `#${conv.name}`;
    $('conversation-title').textContent = title;
    $('composer-label').textContent = `Message ${isDm ? 'CoffeeBuddy' : '#' + conv.name}`;
    $('conversation-hint').textContent = conv.bot_member ? ''
      : 'CoffeeBuddy has not been invited here: /coffee will not work until someone types /invite @CoffeeBuddy.';
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren();
    for (const m of conv.messages) list.append(renderMessage(m, conv.id));
    if (conv.messages.length === 0) list.append(el('li', { class: 'hint' }, 'No messages yet.'));
    if (atBottom) list.scrollTop = list.scrollHeight;
    seen[key(isDm ? 'dm' : conv.id)] = countVisible(conv);
  }

  function renderPeople() {
    const select = $('as');
    if (select.options.length !== snapshot.people.length) {
      select.replaceChildren();
      for (const p of snapshot.people) {
        select.append(el('option', { value: p.id }, p.real_name + (p.is_admin ? ' (workspace admin)' : '')));
      }
    }
    select.value = me;
  }

  function renderTraffic() {
    const list = $('traffic');
    list.replaceChildren();
    for (const e of snapshot.log) {
      const bad = /ok: false|^[45]\d\d|unreachable|no answer|refused|blocked/.test(e.outcome);
      list.append(el('li', {},
        el('span', { class: 'dir' }, e.direction), ' ',
        new Date(e.at_ms).toLocaleTimeString(), ' ', e.what, ' → ',
        el('span', { class: bad ? 'bad' : '' }, e.outcome)));
    }
  }

  // Typed values of the open modal, to survive a re-render.
  function modalValues() {
    const values = {};
    for (const input of $('modal-body').querySelectorAll('[data-block]')) {
      const b = input.dataset.block;
      const a = input.dataset.action;
      values[b] = values[b] || {};
      if (input.type === 'checkbox') {
        values[b][a] = values[b][a] || [];
        if (input.checked) values[b][a].push(input.value);
      } else {
        values[b][a] = input.value;
      }
    }
    return values;
  }

  function renderInput(block, errors, kept) {
    const element = block.element || {};
    const id = `input-${block.block_id}`;
    const error = errors && errors[block.block_id];
    const errorId = `error-${block.block_id}`;
    const keptValue = kept[block.block_id] && kept[block.block_id][element.action_id];
    const optional = block.optional ? el('span', { class: 'optional' }, ' (optional)') : null;
    if (element.type === 'plain_text_input') {
      const wrap = el('div', { class: 'input' });
      wrap.append(el('label', { for: id }, textOf(block.label), optional));
      const counterId = `counter-${block.block_id}`;
      const attrs = {
        id,
        'data-block': block.block_id,
        'data-action': element.action_id,
        'aria-describedby': [element.max_length ? counterId : null, error ? errorId : null].filter(Boolean).join(' ') || null,
        'aria-invalid': error ? 'true' : null,
        'aria-required': block.optional ? null : 'true',
        placeholder: element.placeholder ? textOf(element.placeholder) : null,
      };
      const input = element.multiline ? el('textarea', { ...attrs, rows: 3 }) : el('input', { ...attrs, type: 'text' });
      input.value = keptValue !== undefined ? keptValue : (element.initial_value || '');
      wrap.append(input);
      if (element.max_length) {
        const counter = el('p', { id: counterId, class: 'counter' });
        const update = () => {
          const n = [...input.value].length;
          counter.textContent = `${n}/${element.max_length}`;
          counter.classList.toggle('over', n > element.max_length);
        };
        input.addEventListener('input', update);
        update();
        wrap.append(counter);
      }
      if (error) wrap.append(el('p', { id: errorId, class: 'error' }, String(error)));
      return wrap;
    }
    if (element.type === 'checkboxes') {
      const set = el('fieldset', { 'aria-describedby': error ? errorId : null });
      set.append(el('legend', {}, textOf(block.label), optional));
      const initial = new Set((element.initial_options || []).map((o) => o.value));
      const keptSet = Array.isArray(keptValue) ? new Set(keptValue) : null;
      for (const option of element.options || []) {
        const box = el('input', { type: 'checkbox', value: option.value, 'data-block': block.block_id, 'data-action': element.action_id });
        box.checked = keptSet ? keptSet.has(option.value) : initial.has(option.value);
        const label = el('label', { class: 'checkbox' }, box, ' ');
        appendText(label, option.text);
        set.append(label);
      }
      if (error) set.append(el('p', { id: errorId, class: 'error' }, String(error)));
      return set;
    }
    return el('p', { class: 'hint' }, `[${element.type} input]`);
  }

  function renderModal() {
    const dialog = $('modal');
    const view = snapshot.modal;
    if (!view) {
      modalKey = null;
      modalViewId = null;
      if (dialog.open) dialog.close();
      return;
    }
    const k = `${me}|${view.id}|${view.hash}|${JSON.stringify(view.errors || null)}`;
    if (k === modalKey && dialog.open) return;
    const kept = view.id === modalViewId ? modalValues() : {};
    const refocus = document.activeElement && document.activeElement.id;
    modalKey = k;
    modalViewId = view.id;
    $('modal-title').textContent = emojify(textOf(view.title));
    $('modal-submit').textContent = view.submit ? emojify(textOf(view.submit)) : 'Submit';
    $('modal-submit').hidden = !view.submit;
    $('modal-close').textContent = view.close ? emojify(textOf(view.close)) : 'Cancel';
    const body = $('modal-body');
    body.replaceChildren();
    const where = { key: `view|${view.id}`, target: { view_id: view.id } };
    for (const block of view.blocks || []) {
      body.append(block.type === 'input' ? renderInput(block, view.errors, kept) : renderBlock(block, where));
    }
    if (!dialog.open) dialog.showModal();
    const firstError = view.errors && body.querySelector('[aria-invalid="true"]');
    const target = (refocus && $(refocus)) || firstError || body.querySelector('input, textarea');
    if (firstError) firstError.focus();
    else if (target) target.focus();
  }

  function render() {
    if (!snapshot) return;
    const focusedKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    renderPeople();
    renderNav();
    renderConversation();
    renderTraffic();
    renderModal();
    if (focusedKey) {
      const again = document.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`);
      if (again && !$('modal').open) again.focus();
    }
  }

  async function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    try {
      do {
        refreshAgain = false;
        const r = await fetch(`/playground/api/state?as=${encodeURIComponent(me)}`);
        if (r.ok) {
          snapshot = await r.json();
          render();
        } else if (r.status === 400 && snapshot === null) {
          // Unknown person in the URL or storage: start as the first one.
          const first = await fetch('/playground/api/state?as=U0ALICE');
          if (first.ok) { me = 'U0ALICE'; snapshot = await first.json(); render(); }
        }
      } while (refreshAgain);
    } catch (e) {
      $('connection').textContent = 'Offline: is coffeebuddy-local running?';
    } finally {
      refreshing = false;
    }
  }

  function showNotice(text, inModal) {
    const target = inModal && $('modal').open ? $('modal-trouble') : $('notice');
    target.textContent = text || '';
    if (text) setTimeout(() => { if (target.textContent === text) target.textContent = ''; }, 8000);
  }

  async function api(path, body) {
    try {
      const r = await fetch(`/playground/api/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ as: me, ...body }),
      });
      const answer = await r.json().catch(() => ({}));
      showNotice(answer.notice || '', path === 'submit');
      await refresh();
      return { ok: r.ok, ...answer };
    } catch (e) {
      showNotice('The playground server is not reachable.');
      return { ok: false };
    }
  }

  function select(id) {
    current = id;
    localStorage.setItem('coffeebuddy-playground-conv', id);
    showNotice('');
    render();
    if (id === 'home') api('home', {});
    const focus = $('composer-input');
    if (id !== 'home' && focus) focus.focus();
  }

  function currentConversationId() {
    if (current === 'dm') return snapshot.dm.id;
    return current;
  }

  function setUp() {
    $('as').addEventListener('change', (e) => {
      me = e.target.value;
      localStorage.setItem('coffeebuddy-playground-as', me);
      modalKey = null;
      showNotice('');
      refresh();
    });
    $('composer').addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = $('composer-input');
      const text = input.value;
      if (!text.trim() || !snapshot) return;
      const answer = await api('command', { channel: currentConversationId(), text });
      if (answer.ok) input.value = '';
      input.focus();
    });
    $('modal-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!snapshot || !snapshot.modal) return;
      const submit = $('modal-submit');
      submit.disabled = true;
      try {
        await api('submit', {
          view_id: snapshot.modal.id,
          values: modalValues(),
          skip_client_checks: $('skip-client-checks').checked,
        });
      } finally {
        submit.disabled = false;
      }
    });
    const closeModal = () => {
      if (snapshot && snapshot.modal) api('close', { view_id: snapshot.modal.id });
    };
    $('modal-close').addEventListener('click', closeModal);
    $('modal').addEventListener('cancel', (e) => { e.preventDefault(); closeModal(); });

    const events = new EventSource('/playground/api/events');
    events.addEventListener('change', () => refresh());
    events.addEventListener('open', () => { $('connection').textContent = 'Live: updates appear as they happen'; });
    events.addEventListener('error', () => { $('connection').textContent = 'Reconnecting…'; });
    // A safety net should an event be missed.
    setInterval(refresh, 5000);
    refresh();
  }

  document.addEventListener('DOMContentLoaded', setUp);
})();
