// `swarmctl lab ui`: the page. Plain JS, no build step; xterm.js and its fit add-on are loaded
// before this file (vendor/). It draws the lab from `/api/events` (a snapshot on every change)
// and opens one terminal per tab on `/ws/term/{node}`.
//
// `/?static=1` draws one snapshot from `/api/lab` and stops there: no event stream, no
// terminals. That view is for pictures: an open event stream keeps headless Chromium's virtual
// time still, so `chromium --headless --screenshot --virtual-time-budget=…` of the live page
// never ends. The live page opens its stream after the load event.
//
// Hooks for the browser test (tests/ui): `.node[data-node][data-state][data-leader]`,
// `.task[data-service][data-node][data-state]`, `.lb-mark[data-node][data-network]`,
// `.port-link[data-node][data-service][data-port]`, `.service[data-service] .svc-rate[data-rate]`,
// `#tabs .tab[data-tab]`,
// `.term[data-node][data-tab]`, `#status[data-state]` (connecting | connected | disconnected;
// in the static view: static | failed), `#term-hint` (shown while no tab is open),
// `html[data-view]` (live | static), `html[data-snapshots]` (snapshots drawn so far) and `window.__shoalTerms` (one entry per
// open tab: {id, node, term, ws, fit, status, shells}; `term.buffer.active` is the screen;
// status: connecting | open | exited | closed (connection lost) | failed).
'use strict';

// ---------------------------------------------------------------------------------------------
// The Content-Security-Policy (`style-src 'self'`) refuses the <style> elements xterm's DOM
// renderer fills in and the `style="…"` attributes it sets on true-colour cells. What the CSP
// allows is the CSSOM, so before any terminal opens: createElement('style') makes an inert
// <shoal-style> element instead (an empty <style> would still be reported as a violation) whose
// CSS goes into a constructed style sheet adopted by the document, dropped when the element is
// removed; and setAttribute('style', css) becomes style.cssText = css.
(function cspShim() {
  const canAdopt =
    typeof CSSStyleSheet === 'function' &&
    'adoptedStyleSheets' in Document.prototype &&
    typeof CSSStyleSheet.prototype.replaceSync === 'function';
  if (canAdopt) {
    const createElement = Document.prototype.createElement;
    Document.prototype.createElement = function (tag) {
      if (typeof tag === 'string' && tag.toLowerCase() === 'style') {
        const made = createElement.call(this, 'shoal-style');
        redirect(made, this);
        return made;
      }
      return createElement.apply(this, arguments);
    };
  }

  function redirect(styleEl, doc) {
    let sheet = null;
    let text = '';
    const set = (value) => {
      text = value == null ? '' : String(value);
      if (!sheet) {
        sheet = new CSSStyleSheet();
        doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
      }
      try {
        sheet.replaceSync(text);
      } catch (e) {
        // A rule this browser cannot parse: the previous ones stay.
      }
    };
    for (const prop of ['textContent', 'innerText', 'innerHTML']) {
      Object.defineProperty(styleEl, prop, { get: () => text, set, configurable: true });
    }
    const remove = styleEl.remove;
    styleEl.remove = function () {
      if (sheet) {
        const gone = sheet;
        doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== gone);
        sheet = null;
      }
      return remove.apply(this, arguments);
    };
  }

  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (typeof name === 'string' && name.toLowerCase() === 'style' && this.style) {
      this.style.cssText = String(value);
      return undefined;
    }
    return setAttribute.apply(this, arguments);
  };
})();

// ---------------------------------------------------------------------------------------------
(function main() {
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (sel) => document.querySelector(sel);
  /** `?static=1`: one snapshot, no event stream, no terminals (for screenshots). */
  const STATIC = new URLSearchParams(location.search).get('static') === '1';
  document.documentElement.dataset.view = STATIC ? 'static' : 'live';

  /** An element: h('div', {class: 'x', 'data-node': n, onclick: f}, child, 'text', …). */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function s(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(e, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  // --- colours ---------------------------------------------------------------------------------

  /** FNV-1a: the same name always gets the same colour, in every browser and session. */
  function hash(str) {
    let x = 0x811c9dc5;
    for (let i = 0; i < str.length; i++) {
      x ^= str.charCodeAt(i);
      x = Math.imul(x, 0x01000193) >>> 0;
    }
    return x >>> 0;
  }

  function serviceColor(name) {
    // 24 hues 15° apart and 3 shades: FNV-1a's bits pick one of 72, dark enough for white text.
    const x = hash(name);
    const hue = (x % 24) * 15;
    const light = [34, 40, 46][(x >>> 8) % 3];
    return {
      fill: `hsl(${hue} 62% ${light}%)`,
      light: `hsl(${hue} 70% 93%)`,
      edge: `hsl(${hue} 55% ${light - 10}%)`,
    };
  }

  function networkColor(name) {
    const hue = (hash('net:' + name) % 12) * 30;
    return { band: `hsl(${hue} 60% 95%)`, edge: `hsl(${hue} 45% 62%)`, ink: `hsl(${hue} 50% 28%)` };
  }

  // --- the picture ---------------------------------------------------------------------------------

  const LIVE_TASK_STATES = new Set([
    'new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running',
  ]);

  let lastJson = '';
  let snapshots = 0;

  function stateLabel(state) {
    if (!state) return 'Unknown';
    return state.charAt(0).toUpperCase() + state.slice(1);
  }

  function stripPrefix(addr) {
    return String(addr || '').split('/')[0];
  }

  function leaderStar() {
    return s('svg', { class: 'leader-star', viewBox: '0 0 24 24', width: 16, height: 16, role: 'img', 'aria-label': 'Leader' },
      s('title', {}, 'Leader'),
      s('path', { d: 'M12 2.5l2.9 6.1 6.6.8-4.9 4.6 1.3 6.6L12 17.3l-5.9 3.3 1.3-6.6-4.9-4.6 6.6-.8z' }));
  }

  function nodeCard(n) {
    const state = String(n.state || 'unknown').toLowerCase();
    const open = () => openTerminal(n.name);
    // The static view has no terminals: its cards are not buttons.
    const button = STATIC ? {} : {
      role: 'button',
      tabindex: 0,
      title: `Open a shell on ${n.name}`,
      onclick: open,
      onkeydown: (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          open();
        }
      },
    };
    return h('div', {
      class: 'node',
      'data-node': n.name,
      'data-state': state,
      'data-leader': n.leader ? 'true' : 'false',
      'data-role': n.role || 'unknown',
      ...button,
    },
    h('div', { class: 'node-title' },
      n.leader ? leaderStar() : null,
      h('span', { class: 'node-name' }, n.name)),
    h('div', { class: 'node-meta' },
      h('span', { class: 'role' }, n.role || 'unknown'),
      h('span', { class: 'state-pill', 'data-state': state }, stateLabel(state))),
    h('div', { class: 'node-addr' }, n.address || ''),
    STATIC ? null : h('div', { class: 'node-open' }, '▸ open a shell'));
  }

  function portLinks(node, services) {
    const cell = h('div', { class: 'ports', 'data-node': node.name, 'data-state': String(node.state || '').toLowerCase() });
    for (const svc of services) {
      for (const p of svc.ports || []) {
        const label = `${svc.name} :${p.published}`;
        if ((p.protocol || 'tcp') !== 'tcp' || !node.address) {
          cell.append(h('span', { class: 'port-udp', title: `${p.protocol} ${p.published} → ${p.target}` },
            `${label}/${p.protocol}`));
          continue;
        }
        const href = `http://${node.address}:${p.published}/`;
        const a = h('a', {
          class: 'port-link',
          href,
          target: '_blank',
          rel: 'noopener noreferrer',
          'data-node': node.name,
          'data-service': svc.name,
          'data-port': p.published,
          title: `${href} → ${svc.name}'s port ${p.target} (routing mesh: any node answers)`,
        }, label);
        a.style.borderColor = serviceColor(svc.name).fill;
        cell.append(a);
      }
    }
    return cell;
  }

  function lbMark(net, lb, services) {
    const vips = [];
    for (const svc of services) {
      for (const v of svc.vips || []) {
        if (v.network === net.name) vips.push({ service: svc.name, addr: v.addr });
      }
    }
    return h('div', {
      class: 'lb-mark',
      'data-node': lb.node,
      'data-network': net.name,
      title: `${lb.node}'s load balancer on ${net.name} (${lb.addr}): its VIPs`,
    },
    h('div', { class: 'lb-head' },
      h('span', { class: 'lb-name' }, `lb_${net.name}`),
      h('span', { class: 'lb-addr' }, stripPrefix(lb.addr))),
    vips.length
      ? h('ul', { class: 'vips' }, vips.map((v) => {
        const sw = h('span', { class: 'swatch' });
        sw.style.background = serviceColor(v.service).fill;
        return h('li', { class: 'vip', 'data-service': v.service }, sw, `${v.service} `, h('code', {}, stripPrefix(v.addr)));
      }))
      : h('div', { class: 'vips-none' }, 'no VIP'));
  }

  function taskBox(t, svcName) {
    const state = String(t.state || 'unknown').toLowerCase();
    const parts = String(t.name || '').split('.');
    const short = parts.length >= 2 ? `${parts[0]}.${parts[1]}` : t.name || svcName;
    const c = serviceColor(svcName);
    const box = h('div', {
      class: 'task',
      'data-service': svcName,
      'data-node': t.node || '',
      'data-state': state,
      'data-task': t.id || '',
      title: `${t.name || svcName} · ${state}${t.ip ? ' · ' + t.ip : ''}${t.node ? ' · on ' + t.node : ''}`,
    },
    h('span', { class: 'task-name' }, short),
    h('span', { class: 'task-ip' }, t.ip || ''),
    state !== 'running' ? h('span', { class: 'task-state' }, state) : null);
    if (state === 'running') {
      box.style.background = c.fill;
      box.style.borderColor = c.edge;
    } else {
      box.style.background = c.light;
      box.style.borderColor = c.fill;
      box.style.color = c.edge;
    }
    return box;
  }

  function place(e, row, col, span) {
    e.style.gridRow = String(row);
    e.style.gridColumn = span ? `${col} / span ${span}` : String(col);
    return e;
  }

  function render(snap) {
    const nodes = Array.isArray(snap.nodes) ? snap.nodes : [];
    const services = (Array.isArray(snap.services) ? snap.services : [])
      .slice()
      .sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const networks = (Array.isArray(snap.networks) ? snap.networks : [])
      .filter((n) => !n.driver || n.driver === 'overlay')
      .slice()
      .sort((a, b) => (b.ingress === true) - (a.ingress === true) || String(a.name).localeCompare(String(b.name)));

    $('#lab-name').textContent = snap.lab || '';
    document.title = `Shoal lab ${snap.lab || ''}`;
    const ready = nodes.filter((n) => String(n.state).toLowerCase() === 'ready').length;
    $('#summary').textContent =
      `${nodes.length} nodes · ${ready} ready · ${services.length} service${services.length === 1 ? '' : 's'}`;

    const pic = h('div', { id: 'picture', 'aria-label': "The lab's nodes, networks and tasks" });
    pic.style.gridTemplateColumns = `var(--label-width) repeat(${Math.max(nodes.length, 1)}, minmax(10.5rem, 1fr))`;
    const colOf = new Map(nodes.map((n, i) => [n.name, i + 2]));
    const allCols = nodes.length + 1;
    let row = 1;

    // Nodes.
    pic.append(place(h('div', { class: 'rowlabel' }, 'nodes'), row, 1));
    const columns = nodes.map((n) => {
      const col = h('div', { class: 'column', 'data-col': n.name, 'data-state': String(n.state || '').toLowerCase() });
      pic.append(col);
      pic.append(place(nodeCard(n), row, colOf.get(n.name)));
      return [col, colOf.get(n.name)];
    });
    row++;

    // Published ports, as links to each node's address (the routing mesh answers on all).
    if (services.some((svc) => (svc.ports || []).length)) {
      pic.append(place(h('div', { class: 'rowlabel' }, 'ports'), row, 1));
      nodes.forEach((n) => pic.append(place(portLinks(n, services), row, colOf.get(n.name))));
      row++;
    }

    // Overlay networks: a band across the columns, a balancer mark per node.
    for (const net of networks) {
      const c = networkColor(net.name);
      const band = place(h('div', { class: 'band', 'data-network': net.name }), row, 1, allCols);
      band.style.background = c.band;
      band.style.borderColor = c.edge;
      pic.append(band);
      const label = h('div', { class: 'rowlabel netlabel', 'data-network': net.name },
        h('div', { class: 'net-name' }, net.name),
        h('div', { class: 'net-subnet' }, net.subnet || ''),
        h('div', { class: 'net-driver' }, net.ingress ? 'overlay · ingress' : (net.driver || 'overlay')));
      label.style.color = c.ink;
      pic.append(place(label, row, 1));
      const lbs = Array.isArray(net.lb) ? net.lb : [];
      for (const n of nodes) {
        const cell = h('div', { class: 'lbcell', 'data-node': n.name, 'data-network': net.name });
        for (const lb of lbs.filter((l) => l.node === n.name)) cell.append(lbMark(net, lb, services));
        pic.append(place(cell, row, colOf.get(n.name)));
      }
      row++;
    }

    // Tasks, in their node's column, coloured by service.
    pic.append(place(h('div', { class: 'rowlabel' }, 'tasks'), row, 1));
    const cells = new Map();
    for (const n of nodes) {
      const cell = h('div', { class: 'tasks', 'data-node': n.name });
      cells.set(n.name, cell);
      pic.append(place(cell, row, colOf.get(n.name)));
    }
    const unplaced = [];
    for (const svc of services) {
      const tasks = (svc.tasks || [])
        .filter((t) => LIVE_TASK_STATES.has(String(t.state || '').toLowerCase()))
        .slice()
        .sort((a, b) => String(a.name).localeCompare(String(b.name), undefined, { numeric: true }));
      for (const t of tasks) {
        const box = taskBox(t, svc.name);
        const cell = cells.get(t.node);
        if (cell) cell.append(box);
        else unplaced.push(box);
      }
    }
    row++;
    if (unplaced.length) {
      pic.append(place(h('div', { class: 'rowlabel' }, 'unassigned'), row, 1));
      pic.append(place(h('div', { class: 'tasks unassigned' }, unplaced), row, 2, Math.max(nodes.length, 1)));
      row++;
    }
    // Each node's column behind its cells, from the card down to the tasks.
    for (const [col, c] of columns) place(col, `1 / ${row}`, c);
    if (!nodes.length) {
      pic.append(place(h('div', { class: 'empty-note' }, 'The lab has no nodes (is it up?)'), 1, 2));
    }
    $('#picture').replaceWith(pic);

    renderServices(services);
  }

  // New connections per second through the balancers of every node (≈ requests/s when each
  // request opens a connection), from the nodes' metrics; nothing until `lab ui` has two samples.
  function rateBadge(svc) {
    if (typeof svc.rate !== 'number') return [];
    const total = typeof svc.connections === 'number' ? `, ${svc.connections} since the backends were made` : '';
    return h('span', {
      class: svc.rate > 0 ? 'svc-rate busy' : 'svc-rate',
      'data-rate': String(svc.rate),
      title: `new connections per second through the balancers of every node${total}`,
    }, `${svc.rate.toFixed(svc.rate < 10 ? 2 : 0)} req/s`);
  }

  function renderServices(services) {
    const box = h('section', { id: 'services', 'aria-label': 'Services' });
    if (!services.length) {
      box.append(h('p', { class: 'none' }, 'No services yet. In a manager\'s shell: ',
        h('code', {}, 'swarmctl service create --name web --replicas 5 --publish 8080:80 whoami --port 80')));
    }
    for (const svc of services) {
      const c = serviceColor(svc.name);
      const sw = h('span', { class: 'swatch' });
      sw.style.background = c.fill;
      const ok = svc.running === svc.replicas;
      box.append(h('div', { class: 'service', 'data-service': svc.name },
        sw,
        h('span', { class: 'svc-name' }, svc.name),
        h('span', { class: ok ? 'svc-replicas ok' : 'svc-replicas busy', title: 'running / desired' },
          `${svc.running ?? '?'}/${svc.replicas ?? '?'}`),
        (svc.vips || []).map((v) => h('span', { class: 'svc-vip', 'data-network': v.network },
          `VIP ${v.network} `, h('code', {}, stripPrefix(v.addr)))),
        (svc.ports || []).map((p) => h('span', { class: 'svc-port' },
          `${p.published}→${p.target}/${p.protocol || 'tcp'}`)),
        rateBadge(svc)));
    }
    $('#services').replaceWith(box);
  }

  function onSnapshot(snap) {
    const json = JSON.stringify(snap);
    snapshots++;
    document.documentElement.dataset.snapshots = String(snapshots);
    if (json === lastJson) return;
    lastJson = json;
    render(snap);
  }

  // --- the live feed ---------------------------------------------------------------------------

  let es = null;
  let errors = 0;
  let retry = null;

  function setStatus(state, text) {
    const st = $('#status');
    st.dataset.state = state;
    st.textContent = text;
    document.body.classList.toggle('disconnected', state === 'disconnected');
  }

  function connect() {
    retry = null;
    es = new EventSource('/api/events');
    es.addEventListener('snapshot', (ev) => {
      errors = 0;
      setStatus('connected', 'live');
      try {
        onSnapshot(JSON.parse(ev.data));
      } catch (e) {
        console.error('bad snapshot', e);
      }
    });
    es.onopen = () => {
      errors = 0;
      setStatus('connected', 'live');
    };
    es.onerror = () => {
      // The browser would retry by itself, but not after an HTTP error: retry here, always.
      if (es) es.close();
      es = null;
      errors++;
      if (errors >= 2) {
        setStatus('disconnected', 'disconnected from swarmctl lab ui — retrying…');
        whyDisconnected();
      }
      const delay = Math.min(250 * 2 ** errors, 3000);
      if (!retry) retry = setTimeout(connect, delay);
    };
  }

  /** A better message when the server answers but refuses us (no cookie: a fresh browser). */
  function whyDisconnected() {
    fetch('/api/lab', { cache: 'no-store' }).then((r) => {
      if (r.status === 401 && $('#status').dataset.state === 'disconnected') {
        setStatus('disconnected', 'not signed in: open the address `swarmctl lab ui` printed — retrying…');
      }
    }, () => {});
  }

  // --- terminals ---------------------------------------------------------------------------------

  const terms = [];
  window.__shoalTerms = terms;
  let nextId = 1;
  let active = null;
  const encoder = new TextEncoder();

  function toast(msg) {
    const t = $('#toast');
    t.textContent = msg;
    t.classList.add('show');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove('show'), 3500);
  }

  function send(entry, data) {
    if (entry.ws && entry.ws.readyState === WebSocket.OPEN) entry.ws.send(data);
  }

  function sendResize(entry) {
    const { cols, rows } = entry.term;
    if (entry.sent && entry.sent.cols === cols && entry.sent.rows === rows) return;
    if (!entry.ws || entry.ws.readyState !== WebSocket.OPEN) return;
    entry.sent = { cols, rows };
    entry.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  function fitActive() {
    const e = terms.find((t) => t.id === active);
    if (!e) return;
    try {
      e.fit.fit();
    } catch (err) {
      // Not laid out yet (hidden): the next resize fits it.
    }
    sendResize(e);
  }

  let fitQueued = false;
  function queueFit() {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(() => {
      fitQueued = false;
      fitActive();
    });
  }

  function activate(id) {
    active = id;
    for (const t of terms) {
      const on = t.id === id;
      t.tab.classList.toggle('active', on);
      t.tab.setAttribute('aria-selected', on ? 'true' : 'false');
      t.container.classList.toggle('active', on);
    }
    $('#terminals').classList.toggle('empty', terms.length === 0);
    const e = terms.find((t) => t.id === id);
    if (e) {
      fitActive();
      e.term.focus();
    }
  }

  function copySelection(term) {
    const text = term.getSelection();
    if (!text) {
      toast('Nothing selected to copy');
      return;
    }
    const fallback = () => {
      const ta = h('textarea', { class: 'clip-fallback', readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      let ok = false;
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      ta.remove();
      term.focus();
      toast(ok ? 'Copied' : 'The browser refused to copy: use its Copy menu');
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(() => toast('Copied'), fallback);
    } else {
      fallback();
    }
  }

  function keyHandler(entry) {
    return (ev) => {
      if (ev.type !== 'keydown' || !ev.ctrlKey || !ev.shiftKey || ev.altKey || ev.metaKey) return true;
      if (ev.code === 'KeyC') {
        ev.preventDefault();
        copySelection(entry.term);
        return false;
      }
      if (ev.code === 'KeyV') {
        if (navigator.clipboard && navigator.clipboard.readText) {
          ev.preventDefault();
          navigator.clipboard.readText().then(
            (text) => {
              if (text) entry.term.paste(text);
            },
            () => toast('The browser refused to read the clipboard: paste with Shift+Insert or its menu'));
        }
        // Without the clipboard API the browser's own paste event reaches xterm.
        return false;
      }
      return true;
    };
  }

  function openTerminal(node) {
    if (STATIC) return null;
    const id = nextId++;
    const n = terms.filter((t) => t.node === node).length + 1;
    const close = h('button', { class: 'tab-close', type: 'button', title: 'Close this shell', 'aria-label': `Close ${node} #${n}` }, '×');
    const tab = h('div', {
      class: 'tab',
      role: 'tab',
      tabindex: 0,
      'data-node': node,
      'data-tab': id,
      'data-status': 'connecting',
      title: `A shell on ${node}`,
    }, h('span', { class: 'tab-dot' }), h('span', { class: 'tab-label' }, `${node} #${n}`), close);
    const container = h('div', { class: 'term', 'data-node': node, 'data-tab': id, role: 'tabpanel' });
    $('#tabs').append(tab);
    $('#terms').append(container);

    const term = new Terminal({
      cursorBlink: true,
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: { background: '#15171c', foreground: '#e6e6e6', cursor: '#f0c674' },
    });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    const entry = { id, node, term, fit, ws: null, tab, container, status: 'connecting', exitCode: null, sent: null, shells: 0 };
    terms.push(entry);
    activate(id); // visible before open(): xterm measures its cells on open
    term.open(container);
    try {
      fit.fit();
    } catch (e) {
      // keep xterm's 80×24
    }

    connectShell(entry);
    term.onData((d) => {
      if (entry.status === 'open') send(entry, encoder.encode(d));
      else if (d === '\r' && ENDED.has(entry.status)) connectShell(entry);
    });
    term.onBinary((d) => send(entry, Uint8Array.from(d, (ch) => ch.charCodeAt(0) & 0xff)));
    term.onResize(() => sendResize(entry));
    term.attachCustomKeyEventHandler(keyHandler(entry));

    tab.addEventListener('click', (ev) => {
      if (ev.target === close) return;
      activate(id);
    });
    tab.addEventListener('auxclick', (ev) => {
      if (ev.button === 1) closeTerminal(id);
    });
    tab.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        activate(id);
      }
    });
    close.addEventListener('click', (ev) => {
      ev.stopPropagation();
      closeTerminal(id);
    });
    term.focus();
    return entry;
  }

  /** Statuses after which Enter in the tab starts a new shell there. */
  const ENDED = new Set(['exited', 'closed', 'failed']);

  /** A new shell for the tab: its websocket and handlers (again after Enter once it ended). */
  function connectShell(entry) {
    const { term, node, tab } = entry;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/ws/term/${encodeURIComponent(node)}?cols=${term.cols}&rows=${term.rows}`;
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    entry.ws = ws;
    entry.sent = null;
    entry.exitCode = null;
    entry.shells = (entry.shells || 0) + 1;
    const setStatus = (st) => {
      entry.status = st;
      tab.dataset.status = st;
    };
    const mine = () => entry.ws === ws && entry.status !== 'disposed';
    setStatus('connecting');
    ws.onopen = () => {
      if (!mine()) return;
      setStatus('open');
      entry.sent = { cols: term.cols, rows: term.rows }; // the URL said so
      sendResize(entry);
    };
    ws.onmessage = (ev) => {
      if (!mine()) return;
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data));
        return;
      }
      let msg = null;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg && msg.type === 'exit') {
        entry.exitCode = msg.code;
        setStatus('exited');
        term.write(`\r\n\x1b[2m[the shell on ${node} exited with code ${msg.code}: Enter opens a new one]\x1b[0m\r\n`);
      }
    };
    ws.onclose = () => {
      if (!mine() || entry.status === 'exited') return;
      const wasOpen = entry.status === 'open';
      setStatus(wasOpen ? 'closed' : 'failed');
      term.write(wasOpen
        ? '\r\n\x1b[2m[connection closed: Enter opens a new shell]\x1b[0m\r\n'
        : `\r\n\x1b[31m[could not open a shell on ${node}: Enter tries again]\x1b[0m\r\n`);
    };
  }

  function closeTerminal(id) {
    const i = terms.findIndex((t) => t.id === id);
    if (i < 0) return;
    const [e] = terms.splice(i, 1);
    e.status = 'disposed';
    try {
      e.ws.close();
    } catch (err) {
      // already closed
    }
    e.term.dispose();
    e.tab.remove();
    e.container.remove();
    if (active === id) {
      const next = terms[Math.min(i, terms.length - 1)];
      active = null;
      if (next) activate(next.id);
    }
    $('#terminals').classList.toggle('empty', terms.length === 0);
  }

  window.__shoalOpenTerminal = openTerminal;

  // The terminals' height: drag the bar above the tabs.
  function splitter() {
    const bar = $('#splitter');
    const panel = $('#terminals');
    bar.addEventListener('pointerdown', (ev) => {
      ev.preventDefault();
      bar.setPointerCapture(ev.pointerId);
      const move = (e) => {
        const height = Math.max(120, Math.min(window.innerHeight - 120, window.innerHeight - e.clientY));
        panel.style.height = `${height}px`;
        queueFit();
      };
      const up = () => {
        bar.removeEventListener('pointermove', move);
        bar.removeEventListener('pointerup', up);
        bar.removeEventListener('pointercancel', up);
      };
      bar.addEventListener('pointermove', move);
      bar.addEventListener('pointerup', up);
      bar.addEventListener('pointercancel', up);
    });
  }

  // --- start -------------------------------------------------------------------------------------

  /** The static view: one snapshot from `/api/lab`, then nothing more is fetched. */
  function drawOnce() {
    setStatus('connecting', 'reading the lab…');
    fetch('/api/lab', { cache: 'no-store' })
      .then(async (r) => {
        if (r.status === 401) throw new Error('not signed in: open the address `swarmctl lab ui` printed, with &static=1');
        if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).trim()}`);
        return r.json();
      })
      .then((snap) => {
        onSnapshot(snap);
        const at = new Date().toLocaleTimeString([], { hour12: false });
        setStatus('static', `snapshot ${at}`);
      })
      .catch((e) => setStatus('failed', `could not read the lab: ${e.message}`));
  }

  /** After the load event: neither it nor anything waiting on it waits for the stream. */
  function afterLoad(f) {
    if (document.readyState === 'complete') f();
    else window.addEventListener('load', f, { once: true });
  }

  $('#picture').append(h('div', { class: 'empty-note' }, 'Waiting for the lab…'));
  if (STATIC) {
    drawOnce();
    return;
  }
  window.addEventListener('resize', queueFit);
  if (typeof ResizeObserver === 'function') new ResizeObserver(queueFit).observe($('#terms'));
  splitter();
  setStatus('connecting', 'connecting…');
  afterLoad(connect);
})();
