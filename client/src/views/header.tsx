/** App bar: product name, the research-use notice (always visible), print and back buttons. */
export function Header(props: { onBack?: (() => void) | undefined; printable?: boolean }) {
  return (
    <header class="app-bar screen-only">
      {props.onBack && (
        <button type="button" class="btn btn-quiet" onClick={props.onBack}>
          ← Worklist
        </button>
      )}
      <span class="app-name">Fracture Risk CDS</span>
      <span class="research-pill" role="note">
        Research use — trained on synthetic data
      </span>
      {props.printable && (
        <button type="button" class="btn btn-quiet" onClick={() => window.print()}>
          Print summary
        </button>
      )}
    </header>
  );
}
