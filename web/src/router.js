// Hash routes, so the dashboard works from `/` without the server knowing its paths:
//   #/                                  projects
//   #/projects/<p>                      a project
//   #/projects/<p>/branches/<b>         a project with a branch selected
//   #/operations  #/audit  #/doctor

export function parseRoute(hash) {
  const path = String(hash || '').replace(/^#/, '').replace(/^\/+/, '');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts[0] === 'projects' && parts[1]) {
    return {
      view: 'project',
      project: parts[1],
      branch: parts[2] === 'branches' && parts[3] ? parts[3] : null,
    };
  }
  if (['operations', 'audit', 'doctor'].includes(parts[0])) return { view: parts[0] };
  return { view: 'projects' };
}

export function projectHref(project) {
  return `#/projects/${encodeURIComponent(project)}`;
}

export function branchHref(project, branch) {
  return `#/projects/${encodeURIComponent(project)}/branches/${encodeURIComponent(branch)}`;
}
