/** App bar: product name, the research-use notice (always visible), patient view, print and back buttons. */
export function Header(props: { onBack?: (() => void) | undefined; printable?: boolean; patientView?: boolean; onPatientView?: ((on: boolean) => void) | undefined }) {
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
      {(props.printable || props.onPatientView) && (
        <span class="app-bar-tools">
          {props.onPatientView && (
            <button type="button" class="btn btn-quiet" aria-pressed={!!props.patientView} onClick={() => props.onPatientView?.(!props.patientView)}>
              {props.patientView ? 'Clinician view' : 'Patient view'}
            </button>
          )}
          {props.printable && (
            <button type="button" class="btn btn-quiet" onClick={() => window.print()}>
              Print summary
            </button>
          )}
        </span>
      )}
    </header>
  );
}
