// Branch and project names as the server checks them (src/engine/names.h): 1-63 lowercase
// ASCII letters, digits, '-' and '_', starting with a letter or digit.
export const NAME_PATTERN = '[a-z0-9][a-z0-9_\\-]{0,62}';
const NAME_RE = new RegExp(`^${NAME_PATTERN}$`);

// '' when valid, else why not (for the form).
export function nameProblem(name) {
  if (!name) return 'a name is required';
  if (name.length > 63) return 'at most 63 characters';
  if (!NAME_RE.test(name)) return 'lowercase letters, digits, - and _, starting with a letter or digit';
  return '';
}
