/**
 * Card rendering as EHRs do it: indicator colour and label, summary, Markdown detail, source label and link,
 * suggestion buttons, links (SMART links open inside the chart), and "Dismiss" with the card's override reasons.
 * Rendered on the server so that the Markdown sanitising runs in one place that tests can reach.
 *
 * Also the store of cards shown: the browser refers to a card by an opaque key, and the server (not the page)
 * holds what a suggestion would create, so a page cannot make the EHR create anything the service did not suggest.
 * @see https://cds-hooks.hl7.org/2.0/#card-attributes
 */
import { randomBytes } from 'node:crypto';
import { Marked, type Tokens } from 'marked';
import type { CdsCard } from './cds-types.ts';
import { esc, html, safeUrl, SafeHtml } from './html.ts';

/**
 * GitHub-flavoured Markdown with raw HTML escaped (not passed through), links limited to http(s), and images shown
 * as links (a card must not make the EHR fetch arbitrary URLs when it renders).
 */
const markdown = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      return esc(token.text);
    },
    link(token: Tokens.Link): string {
      const inner = this.parser.parseInline(token.tokens);
      const href = safeUrl(token.href);
      if (!href) return inner;
      return `<a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${inner}</a>`;
    },
    image(token: Tokens.Image): string {
      const href = safeUrl(token.href);
      return href ? `<a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${esc(token.text || 'image')}</a>` : esc(token.text);
    },
  },
});

/** Sanitised HTML of a card's Markdown `detail`. */
export function renderMarkdown(source: string): SafeHtml {
  return new SafeHtml(markdown.parse(source, { async: false }));
}

export interface ShownCard {
  key: string;
  serviceId: string;
  patientId: string;
  card: CdsCard;
  /** Suggestion indexes already accepted, and whether the card was dismissed (to refuse doing either twice). */
  accepted: Set<number>;
  dismissed: boolean;
}

/** Cards recently shown, by key (bounded: least recently shown evicted). */
export class CardStore {
  readonly #cards = new Map<string, ShownCard>();
  constructor(readonly capacity = 1000) {}

  add(serviceId: string, patientId: string, card: CdsCard): ShownCard {
    const shown: ShownCard = { key: randomBytes(9).toString('base64url'), serviceId, patientId, card, accepted: new Set(), dismissed: false };
    this.#cards.set(shown.key, shown);
    while (this.#cards.size > this.capacity) this.#cards.delete(this.#cards.keys().next().value as string);
    return shown;
  }

  get(key: string): ShownCard | undefined {
    return this.#cards.get(key);
  }
}

const INDICATOR_LABEL: Record<CdsCard['indicator'], string> = { info: 'Info', warning: 'Warning', critical: 'Critical' };
/** A shape as well as a colour, so the indicator does not rely on colour alone (WCAG 1.4.1). */
const INDICATOR_ICON: Record<CdsCard['indicator'], string> = { info: 'i', warning: '!', critical: '!!' };

/**
 * What a card is about, for "one card per topic on a screen": its `source.topic` (system|code) when it has one,
 * else its source label. A card from an order hook replaces a patient-view card with the same key.
 */
export function topicKey(card: CdsCard): string {
  const t = card.source?.topic;
  return t?.code ? `${t.system ?? ''}|${t.code}` : `source:${card.source?.label ?? ''}`;
}

function indicatorOf(card: CdsCard): CdsCard['indicator'] {
  return card.indicator === 'warning' || card.indicator === 'critical' ? card.indicator : 'info';
}

/** One card as an `<article>`; buttons carry `data-action` for the browser script. */
export function renderCard(shown: ShownCard): SafeHtml {
  const { card, key } = shown;
  const ind = indicatorOf(card);
  const titleId = `card-${key}-title`;
  const sourceUrl = safeUrl(card.source?.url);
  const iconUrl = safeUrl(card.source?.icon);
  const suggestions = card.suggestions ?? [];
  const links = card.links ?? [];
  const reasons = card.overrideReasons ?? [];
  return html`<article class="cds-card cds-card--${ind}" data-card="${key}" data-topic="${topicKey(card)}" data-selection="${card.selectionBehavior ?? ''}" aria-labelledby="${titleId}">
  <header class="cds-card__head">
    <span class="cds-card__indicator"><span class="cds-card__icon" aria-hidden="true">${INDICATOR_ICON[ind]}</span>${INDICATOR_LABEL[ind]}</span>
    <h3 class="cds-card__summary" id="${titleId}">${card.summary}</h3>
  </header>
  ${card.detail ? html`<div class="cds-card__detail">${renderMarkdown(card.detail)}</div>` : ''}
  ${suggestions.length > 0
    ? html`<div class="cds-card__suggestions" role="group" aria-label="Suggestions">${suggestions.map(
        (s, i) =>
          html`<button type="button" class="btn ${s.isRecommended ? 'btn--primary' : 'btn--secondary'}" data-action="accept" data-suggestion="${i}">${s.label}${s.isRecommended ? html`<span class="visually-hidden"> (recommended)</span>` : ''}</button>`,
      )}</div>`
    : ''}
  ${links.length > 0
    ? html`<ul class="cds-card__links">${links.map((l, i) => {
        if (l.type === 'smart') return html`<li><button type="button" class="btn btn--link" data-action="launch" data-link="${i}">${l.label}</button></li>`;
        const href = safeUrl(l.url);
        return href ? html`<li><a href="${href}" target="_blank" rel="noopener noreferrer">${l.label}</a></li>` : '';
      })}</ul>`
    : ''}
  <footer class="cds-card__foot">
    <span class="cds-card__source">${iconUrl ? html`<img src="${iconUrl}" alt="" width="16" height="16"> ` : ''}Source: ${sourceUrl ? html`<a href="${sourceUrl}" target="_blank" rel="noopener noreferrer">${card.source?.label ?? 'unknown'}</a>` : card.source?.label ?? 'unknown'}</span>
    <button type="button" class="btn btn--quiet" data-action="dismiss" aria-expanded="false">Dismiss</button>
  </footer>
  <form class="cds-card__override" data-action="override" hidden>
    <label>Reason for dismissing
      <select name="reason">
        ${reasons.map((r, i) => html`<option value="${i}">${r.display ?? r.code ?? 'Reason'}</option>`)}
        <option value="">No reason given</option>
      </select>
    </label>
    <label>Comment (optional) <input name="comment" type="text" maxlength="200" autocomplete="off"></label>
    <div class="cds-card__override-actions"><button type="submit" class="btn btn--secondary">Dismiss card</button> <button type="button" class="btn btn--quiet" data-action="cancel-dismiss">Cancel</button></div>
  </form>
  <p class="cds-card__status" role="status" aria-live="polite"></p>
</article>`;
}

/** A service's answer for the sidebar: its cards, or a notice that it failed (EHRs carry on without it). */
export function renderCardList(shown: readonly ShownCard[]): SafeHtml {
  return html`${shown.map((s) => renderCard(s))}`;
}
