// A branch state as a coloured badge; the word is always there, colour only helps.
export function StateBadge({ state }) {
  const s = state || 'unknown';
  return <span class={`badge state-${s.replace(/[^a-z]/g, '')}`}>{s}</span>;
}
