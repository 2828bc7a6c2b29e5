import { useState } from 'preact/hooks';

// Form fields for a branch's lifetime and labels, shared by the create and Set TTL dialogs.
// Each shows its hint below it, and instead of the hint why its text is not valid: once the
// user has left the field, or after a submit (`showProblem`). The field's id is its test id.

// A duration typed as "30m", "12h", "2d" (lifetime.js parseDuration decides).
export function DurationField({ id, label, value, onInput, problem, showProblem, disabled = false, help }) {
  const [left, setLeft] = useState(false);
  const show = (showProblem || left) && !!problem && !disabled;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        data-testid={id}
        value={value}
        disabled={disabled}
        autoComplete="off"
        spellcheck={false}
        placeholder="e.g. 12h"
        aria-invalid={show ? 'true' : undefined}
        aria-describedby={`${id}-help`}
        onInput={(e) => onInput(e.currentTarget.value)}
        onBlur={() => setLeft(true)}
      />
      <small id={`${id}-help`} class={show ? 'field-error' : 'muted'} data-testid={`${id}-help`}>
        {show ? problem : help}
      </small>
    </div>
  );
}

// Labels as key=value, separated by commas or line breaks (lifetime.js parseLabels decides).
export function LabelsField({ id, value, onInput, problem, showProblem }) {
  const [left, setLeft] = useState(false);
  const show = (showProblem || left) && !!problem;
  return (
    <div class="field">
      <label for={id}>Labels</label>
      <textarea
        id={id}
        data-testid={id}
        rows={2}
        value={value}
        autoComplete="off"
        spellcheck={false}
        placeholder="team=web, pr=42"
        aria-invalid={show ? 'true' : undefined}
        aria-describedby={`${id}-help`}
        onInput={(e) => onInput(e.currentTarget.value)}
        onBlur={() => setLeft(true)}
      />
      <small id={`${id}-help`} class={show ? 'field-error' : 'muted'} data-testid={`${id}-help`}>
        {show
          ? problem
          : 'key=value, separated by commas or lines; letters, digits, - _ . /'}
      </small>
    </div>
  );
}
