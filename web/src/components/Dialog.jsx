import { useEffect, useRef } from 'preact/hooks';

let dialogCount = 0;

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), ' +
  'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// A modal dialog: focus moves into it when it opens, Tab and Shift+Tab stay inside it,
// Escape closes it, and focus goes back to what had it before (the action button).
export function Dialog({ title, onClose, children, footer, testid = 'dialog' }) {
  const ref = useRef(null);
  const titleId = useRef(`dialog-title-${++dialogCount}`).current;

  // Keys are handled on the document, not on the dialog: focus may sit on <body> for a moment
  // (a button that became disabled drops it), and Escape must still close the dialog then.
  const onCloseRef = useRef(onClose);
  onCloseRef.current = onClose;

  useEffect(() => {
    const opener = document.activeElement;
    const node = ref.current;
    // The first field if there is one, else the first button.
    const first =
      node?.querySelector('[data-autofocus]') ??
      node?.querySelector('input:not([disabled]), select:not([disabled])') ??
      node?.querySelector(FOCUSABLE);
    (first ?? node)?.focus();

    const onKeyDown = (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        onCloseRef.current();
        return;
      }
      if (e.key !== 'Tab') return;
      const items = [...node.querySelectorAll(FOCUSABLE)].filter((el) => !el.closest('[hidden]'));
      if (items.length === 0) {
        e.preventDefault();
        return;
      }
      const firstItem = items[0];
      const lastItem = items[items.length - 1];
      const active = document.activeElement;
      const inside = node.contains(active) && active !== node;
      if (e.shiftKey && (active === firstItem || !inside)) {
        e.preventDefault();
        lastItem.focus();
      } else if (!e.shiftKey && (active === lastItem || !inside)) {
        e.preventDefault();
        firstItem.focus();
      }
    };
    // Focus that wanders outside (a click on the backdrop's edge, a script) comes back.
    const onFocusIn = (e) => {
      if (!node.contains(e.target)) node.focus();
    };
    document.addEventListener('keydown', onKeyDown, true);
    document.addEventListener('focusin', onFocusIn);
    return () => {
      document.removeEventListener('keydown', onKeyDown, true);
      document.removeEventListener('focusin', onFocusIn);
      if (opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
    };
  }, []);

  return (
    <div
      class="backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div
        class="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        tabIndex={-1}
        ref={ref}
        data-testid={testid}
      >
        <h2 id={titleId}>{title}</h2>
        <div class="dialog-body">{children}</div>
        {footer && <div class="dialog-footer">{footer}</div>}
      </div>
    </div>
  );
}

// The footer every confirmation shares: Cancel, then the action.
export function DialogButtons({ onCancel, confirmLabel, danger = false, disabled = false, busy }) {
  return (
    <>
      <button type="button" class="btn" data-testid="dialog-cancel" onClick={onCancel}>
        Cancel
      </button>
      <button
        type="submit"
        class={`btn ${danger ? 'btn-danger' : 'btn-primary'}`}
        data-testid="dialog-confirm"
        disabled={disabled}
        aria-disabled={busy ? 'true' : undefined}
      >
        {busy ? 'Sending…' : confirmLabel}
      </button>
    </>
  );
}

// A dialog around a form: Enter submits, the confirm button is the form's submit.
// `error`: why the server refused the request (the dialog stays open to fix it).
export function FormDialog({
  title,
  onClose,
  onSubmit,
  confirmLabel,
  danger,
  disabled,
  busy,
  testid,
  error,
  children,
}) {
  return (
    <Dialog title={title} onClose={onClose} testid={testid}>
      {/* noValidate: the dialogs check their fields themselves and say why next to them. */}
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!disabled && !busy) onSubmit();
        }}
      >
        {children}
        {error && (
          <p class="field-error" role="alert" data-testid="dialog-error">
            {error}
          </p>
        )}
        <div class="dialog-footer">
          <DialogButtons
            onCancel={onClose}
            confirmLabel={confirmLabel}
            danger={danger}
            disabled={disabled}
            busy={busy}
          />
        </div>
      </form>
    </Dialog>
  );
}
