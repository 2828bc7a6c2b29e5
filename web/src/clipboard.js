// Copies text. navigator.clipboard needs a secure context (https or localhost); elsewhere a
// hidden textarea and execCommand('copy') still work in current browsers.
export async function copyText(text) {
  if (globalThis.navigator?.clipboard?.writeText && globalThis.isSecureContext !== false) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through
    }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
