/**
 * The demo EHR's browser script: fills the decision-support areas from the EHR's own endpoints (which call the
 * CDS service server-side), and wires card buttons, the imaging order form and the SMART app panel. Cards arrive
 * as sanitised HTML rendered by the server (server/sandbox/ehr/cards.ts); this script only inserts it.
 */

interface PageData {
  patientId: string;
  base: string;
}

interface HookAnswer {
  html: string;
  cards: number;
  /** What the cards are about (`source.topic`): one card per topic on the screen. */
  topics?: string[];
  draft?: string;
}

class RequestFailed extends Error {}

async function postJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body) });
  const data = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new RequestFailed(data.error ?? `HTTP ${res.status}`);
  return data;
}

function $(sel: string, root: ParentNode = document): HTMLElement | null {
  return root.querySelector<HTMLElement>(sel);
}

function setStatus(el: Element | null, message: string): void {
  if (el) el.textContent = message;
}

function init(data: PageData): void {
  const api = `${data.base}/api`;
  const pid = encodeURIComponent(data.patientId);
  const sidebar = $('.cds__cards[data-hook="patient-view"]');
  const orderPanel = $('#order-panel');
  const reasonInput = $('#order-panel input[name="reason"]') as HTMLInputElement | null;
  const orderCards = $('.order__cards');
  const orderStatus = $('.order__status');
  const signBtn = $('button[data-action="sign"]') as HTMLButtonElement | null;
  const placeBtn = $('button[data-action="place"]') as HTMLButtonElement | null;
  const appPanel = $('#app-panel');
  const appFrame = $('#app-panel iframe') as HTMLIFrameElement | null;
  let draft: string | undefined;
  let selectSeq = 0;
  let opener: HTMLElement | null = null;
  /** Topics of the cards in the order panel: the sidebar hides its own card on the same topic meanwhile. */
  let orderTopics = new Set<string>();

  /**
   * One card per topic on the screen: while the order panel shows a card about a topic (the fracture risk), the
   * sidebar's patient-view card on that topic is hidden and a line says where it went; it comes back when the order
   * is placed or cancelled.
   */
  function syncSidebar(): void {
    if (!sidebar) return;
    let hidden = 0;
    sidebar.querySelectorAll<HTMLElement>('article[data-card]').forEach((a) => {
      const hide = orderTopics.has(a.dataset['topic'] ?? '');
      a.hidden = hide;
      if (hide) hidden++;
    });
    let note = sidebar.querySelector<HTMLElement>('[data-replaced-note]');
    if (hidden > 0 && !note) {
      note = document.createElement('p');
      note.className = 'cds__note';
      note.dataset['replacedNote'] = '';
      note.textContent = 'The fracture-risk card is shown with the order.';
      sidebar.prepend(note);
    } else if (hidden === 0) note?.remove();
  }

  function setOrderTopics(topics: readonly string[]): void {
    orderTopics = new Set(topics);
    syncSidebar();
  }

  async function patientView(): Promise<void> {
    if (!sidebar) return;
    try {
      const a = await postJson<HookAnswer>(`${api}/patients/${pid}/patient-view`, {});
      sidebar.innerHTML = a.html || '';
      if (a.cards === 0 && !a.html) sidebar.innerHTML = '<p class="muted">No decision support for this patient right now.</p>';
      syncSidebar(); // an order card may already be on the screen
    } catch (err) {
      sidebar.innerHTML = '';
      const p = document.createElement('p');
      p.className = 'cds__note';
      p.textContent = `Decision support is unavailable: ${(err as Error).message}`;
      sidebar.append(p);
    } finally {
      sidebar.setAttribute('aria-busy', 'false');
      document.body.dataset['patientView'] = 'done';
    }
  }

  async function refreshSection(section: string): Promise<void> {
    const res = await fetch(`${data.base}/patients/${pid}/sections/${section}`);
    if (!res.ok) return;
    const old = document.getElementById(section);
    if (!old) return;
    const tpl = document.createElement('template');
    tpl.innerHTML = await res.text();
    const fresh = tpl.content.firstElementChild;
    if (fresh) old.replaceWith(fresh);
  }

  // --- Imaging reports: "Finalise report", then wait for the background assessment it triggers. ---
  const reportsStatus = $('#reports-status');
  /** How long the page waits for the background job's RiskAssessment (it usually takes well under a second). */
  const ASSESSMENT_WAIT_MS = 30_000;
  const ASSESSMENT_POLL_MS = 400;

  function showReportStatus(message: string, state: '' | 'is-done' | 'is-failed' = ''): void {
    if (!reportsStatus) return;
    reportsStatus.className = `reports-status ${state}`.trim();
    reportsStatus.textContent = message;
  }

  async function waitForAssessment(reportId: string, since: string | undefined): Promise<string | undefined> {
    const url = `${api}/patients/${pid}/reports/${encodeURIComponent(reportId)}/assessment${since ? `?since=${encodeURIComponent(since)}` : ''}`;
    const until = Date.now() + ASSESSMENT_WAIT_MS;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, ASSESSMENT_POLL_MS));
      const res = await fetch(url, { headers: { Accept: 'application/json' } }).catch(() => undefined);
      if (!res?.ok) continue; // a transient failure: keep polling until the deadline
      const a = (await res.json()) as { found: boolean; id?: string };
      if (a.found && a.id) return a.id;
    }
    return undefined;
  }

  async function finaliseReport(btn: HTMLButtonElement): Promise<void> {
    const reportId = btn.dataset['report'];
    if (!reportId) return;
    btn.disabled = true;
    showReportStatus('Finalising the report…');
    document.body.dataset['reportFinalise'] = 'running';
    try {
      const r = await postJson<{ report: string; lastUpdated?: string }>(`${api}/patients/${pid}/reports/${encodeURIComponent(reportId)}/finalise`, {});
      await refreshSection('reports');
      showReportStatus('Report marked final. Background fracture-risk assessment triggered — waiting for the result…');
      const raId = await waitForAssessment(reportId, r.lastUpdated);
      if (raId) {
        await refreshSection('assessments');
        document.querySelector(`#assessments tr[data-ra="${CSS.escape(raId)}"]`)?.classList.add('is-new');
        showReportStatus('Background assessment done: the new result is highlighted under “Fracture risk assessments”. A high-risk result also goes to the FLS worklist.', 'is-done');
        document.body.dataset['reportFinalise'] = 'assessed';
      } else {
        showReportStatus('The report is final, but no assessment has arrived yet (the background job may still be running, or the study could not be assessed). Reload the chart later.', 'is-failed');
        document.body.dataset['reportFinalise'] = 'no-assessment';
      }
    } catch (err) {
      btn.disabled = false;
      showReportStatus(`The report was not finalised: ${(err as Error).message}`, 'is-failed');
      document.body.dataset['reportFinalise'] = 'failed';
    }
  }

  function resetOrder(): void {
    draft = undefined;
    selectSeq++;
    document.querySelectorAll<HTMLInputElement>('#order-panel input[name="study"]').forEach((r) => (r.checked = false));
    if (orderCards) orderCards.innerHTML = '';
    setOrderTopics([]);
    setStatus(orderStatus, '');
    if (signBtn) {
      signBtn.disabled = true;
      signBtn.hidden = false;
    }
    if (placeBtn) placeBtn.hidden = true;
  }

  async function orderSelect(study: number): Promise<void> {
    const seq = ++selectSeq;
    const reason = reasonInput?.value ?? '';
    if (signBtn) signBtn.disabled = true;
    if (placeBtn) placeBtn.hidden = true;
    if (signBtn) signBtn.hidden = false;
    if (orderCards) {
      orderCards.setAttribute('aria-busy', 'true');
      orderCards.innerHTML = '<p class="muted">Checking decision support…</p>';
    }
    try {
      const a = await postJson<HookAnswer>(`${api}/patients/${pid}/order-select`, { study, reason });
      if (seq !== selectSeq) return; // a later choice superseded this one
      draft = a.draft;
      if (orderCards) orderCards.innerHTML = a.html || '<p class="muted">No decision support for this order.</p>';
      setOrderTopics(a.topics ?? []);
      if (signBtn) signBtn.disabled = !draft;
    } catch (err) {
      if (seq !== selectSeq) return;
      if (orderCards) orderCards.textContent = `Decision support is unavailable: ${(err as Error).message}`;
    } finally {
      if (seq === selectSeq) orderCards?.setAttribute('aria-busy', 'false');
    }
  }

  async function placeOrder(): Promise<void> {
    if (!draft) return;
    setStatus(orderStatus, 'Placing order…');
    try {
      const r = await postJson<{ created: string; display?: string }>(`${api}/patients/${pid}/orders`, { draft });
      resetOrder();
      if (orderPanel) orderPanel.hidden = true;
      $('button[data-action="open-order"]')?.setAttribute('aria-expanded', 'false');
      await refreshSection('orders');
      const status = document.createElement('p');
      status.className = 'flash';
      status.setAttribute('role', 'status');
      status.dataset['created'] = r.created;
      status.textContent = `Order placed: ${r.display ?? 'imaging order'}.`;
      $('#orders')?.prepend(status);
    } catch (err) {
      setStatus(orderStatus, `Not placed: ${(err as Error).message}`);
    }
  }

  async function sign(): Promise<void> {
    if (!draft || !signBtn) return;
    signBtn.disabled = true;
    setStatus(orderStatus, 'Signing…');
    try {
      const a = await postJson<HookAnswer>(`${api}/patients/${pid}/order-sign`, { draft });
      if (a.cards > 0) {
        if (orderCards) orderCards.innerHTML = a.html;
        setOrderTopics(a.topics ?? []);
        signBtn.hidden = true;
        if (placeBtn) {
          placeBtn.hidden = false;
          placeBtn.focus();
        }
        setStatus(orderStatus, 'Review the advice above, then place the order.');
        return;
      }
      await placeOrder();
    } catch (err) {
      signBtn.disabled = false;
      setStatus(orderStatus, `Signing failed: ${(err as Error).message}`);
    }
  }

  function openApp(url: string, from: HTMLElement | null): void {
    if (!appPanel || !appFrame) return;
    opener = from;
    appFrame.src = url;
    appPanel.hidden = false;
    document.body.classList.add('app-open');
    $('#app-h', appPanel)?.setAttribute('tabindex', '-1');
    $('#app-h', appPanel)?.focus();
  }

  function closeApp(): void {
    if (!appPanel || !appFrame) return;
    appPanel.hidden = true;
    appFrame.src = 'about:blank';
    document.body.classList.remove('app-open');
    opener?.focus();
    // The app may have placed orders or written an assessment: show them, as an EHR refreshes its chart.
    void refreshSection('orders');
    void refreshSection('assessments');
  }

  async function cardAction(btn: HTMLElement, action: string): Promise<void> {
    const card = btn.closest<HTMLElement>('article[data-card]');
    if (!card) return;
    const key = card.dataset['card']!;
    const status = $('.cds-card__status', card);
    if (action === 'accept') {
      const i = Number(btn.dataset['suggestion']);
      (btn as HTMLButtonElement).disabled = true;
      setStatus(status, 'Working…');
      try {
        const r = await postJson<{ done: string[]; message?: string; feedbackError?: string }>(`${api}/cards/${encodeURIComponent(key)}/accept`, { suggestion: i });
        btn.classList.add('is-done');
        btn.textContent = `✓ ${btn.textContent ?? ''}`;
        if (card.dataset['selection'] === 'at-most-one') card.querySelectorAll<HTMLButtonElement>('button[data-action="accept"]').forEach((b) => (b.disabled = true));
        if (status) (status as HTMLElement).dataset['created'] = r.done.join(' ');
        setStatus(status, `${r.message ?? 'Done.'}${r.feedbackError ? ` (${r.feedbackError})` : ''}`);
        await refreshSection(r.done.some((d) => d.startsWith('Condition/')) ? 'problems' : 'orders');
      } catch (err) {
        (btn as HTMLButtonElement).disabled = false;
        setStatus(status, `Failed: ${(err as Error).message}`);
      }
    } else if (action === 'dismiss' || action === 'cancel-dismiss') {
      const form = $('form.cds-card__override', card);
      const dismissBtn = $('button[data-action="dismiss"]', card);
      if (!form || !dismissBtn) return;
      const show = action === 'dismiss' && form.hidden;
      form.hidden = !show;
      dismissBtn.setAttribute('aria-expanded', String(show));
      if (show) $('select', form)?.focus();
      else dismissBtn.focus();
    } else if (action === 'launch') {
      setStatus(status, 'Opening the app…');
      try {
        const r = await postJson<{ url: string }>(`${api}/cards/${encodeURIComponent(key)}/launch`, { link: Number(btn.dataset['link']) });
        setStatus(status, '');
        openApp(r.url, btn);
      } catch (err) {
        setStatus(status, `The app could not be opened: ${(err as Error).message}`);
      }
    }
  }

  async function dismiss(form: HTMLFormElement): Promise<void> {
    const card = form.closest<HTMLElement>('article[data-card]');
    if (!card) return;
    const reasonValue = (form.elements.namedItem('reason') as HTMLSelectElement | null)?.value ?? '';
    const comment = (form.elements.namedItem('comment') as HTMLInputElement | null)?.value ?? '';
    try {
      const r = await postJson<{ feedbackError?: string }>(`${api}/cards/${encodeURIComponent(card.dataset['card']!)}/dismiss`, {
        reason: reasonValue === '' ? null : Number(reasonValue),
        comment,
      });
      const summary = $('.cds-card__summary', card)?.textContent ?? '';
      const note = document.createElement('p');
      note.className = 'cds__dismissed';
      note.setAttribute('role', 'status');
      note.textContent = `Dismissed: ${summary}${r.feedbackError ? ` (${r.feedbackError})` : ''}`;
      card.replaceWith(note);
    } catch (err) {
      setStatus($('.cds-card__status', card), `Dismiss failed: ${(err as Error).message}`);
    }
  }

  document.addEventListener('click', (ev) => {
    const btn = (ev.target as Element | null)?.closest<HTMLElement>('button[data-action]');
    if (!btn) return;
    const action = btn.dataset['action']!;
    if (action === 'open-order' && orderPanel) {
      const show = orderPanel.hidden;
      orderPanel.hidden = !show;
      btn.setAttribute('aria-expanded', String(show));
      if (show) {
        orderPanel.scrollIntoView({ block: 'start' });
        $('input[name="study"]', orderPanel)?.focus();
      }
    } else if (action === 'cancel-order' && orderPanel) {
      resetOrder();
      orderPanel.hidden = true;
      $('button[data-action="open-order"]')?.setAttribute('aria-expanded', 'false');
    } else if (action === 'sign') void sign();
    else if (action === 'place') void placeOrder();
    else if (action === 'open-app') {
      void postJson<{ url: string }>(`${api}/patients/${pid}/launch`, {})
        .then((r) => openApp(r.url, btn))
        .catch((err: Error) => window.alert(`The app could not be opened: ${err.message}`));
    } else if (action === 'close-app') closeApp();
    else if (action === 'finalise-report') void finaliseReport(btn as HTMLButtonElement);
    else void cardAction(btn, action);
  });

  document.addEventListener('change', (ev) => {
    const input = ev.target as HTMLInputElement | null;
    if (input?.name === 'study' && input.type === 'radio' && input.checked) void orderSelect(Number(input.value));
  });

  document.addEventListener('submit', (ev) => {
    const form = ev.target as HTMLFormElement;
    if (form.dataset['action'] === 'override') {
      ev.preventDefault();
      void dismiss(form);
    }
  });

  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && appPanel && !appPanel.hidden) closeApp();
  });

  void patientView();
}

const dataEl = document.getElementById('page-data');
if (dataEl?.textContent) init(JSON.parse(dataEl.textContent) as PageData);
