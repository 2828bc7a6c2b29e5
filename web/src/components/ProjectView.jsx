import { useEffect, useState } from 'preact/hooks';
import { DASH } from '../format.js';
import { matchesLabels, parseLabelFilter } from '../lifetime.js';
import { branchRef, dependentsOf } from '../tree.js';
import { projectHref } from '../router.js';
import { BranchDetails } from './BranchDetails.jsx';
import { BranchTable } from './BranchTable.jsx';
import { DeleteDialog, ResetDialog, SnapshotDialog, TtlDialog, VerbDialog } from './BranchDialogs.jsx';
import { CreateBranchDialog } from './CreateBranchDialog.jsx';
import { LineageTree, TreeLegend } from './LineageTree.jsx';
import { ProjectOperations } from './OperationsView.jsx';

// main first, then by age: the order the lineage reads in.
function ordered(branches) {
  return [...branches].sort((a, b) => {
    if (!a.parent !== !b.parent) return a.parent ? 1 : -1;
    return (Date.parse(a.created_at) || 0) - (Date.parse(b.created_at) || 0) || a.name.localeCompare(b.name);
  });
}

// One project: the lineage graph, the branch table with its actions, and the selected
// branch's details. Reloads whenever `version` changes (live events, finished operations).
export function ProjectView({ api, project, selectedBranch, version, runMutation, readOnly }) {
  const [data, setData] = useState({ project: null, branches: [], snapshots: [], loaded: false });
  const [loadError, setLoadError] = useState('');
  const [dialog, setDialog] = useState(null); // {verb, branch?, initial?}
  const [dialogError, setDialogError] = useState('');
  const [actionError, setActionError] = useState(''); // an action without a dialog (protect)
  const [filter, setFilter] = useState('');

  useEffect(() => {
    let live = true;
    Promise.all([
      api.project(project),
      api.branches(project),
      api.snapshots().catch(() => []),
    ])
      .then(([info, branches, snapshots]) => {
        if (!live) return;
        setData({
          project: info,
          branches: ordered(branches ?? []),
          snapshots: (snapshots ?? []).filter((s) => String(s.branch).startsWith(`${project}/`)),
          loaded: true,
        });
        setLoadError('');
      })
      .catch((e) => live && setLoadError(e.message));
    return () => {
      live = false;
    };
  }, [project, version]);

  useEffect(() => {
    setDialog(null);
    setActionError('');
    setFilter('');
  }, [project]);

  const open = (verb, branch = null, initial = {}) => {
    setDialogError('');
    setDialog({ verb, branch, initial });
  };
  const close = () => setDialog(null);

  // Sends the request; the dialog closes once the server accepted it (the banner follows the
  // operation) and stays open with the server's reason if it refused.
  const send = async (label, target, request) => {
    setDialogError('');
    try {
      await runMutation(label, project, target, request);
      setDialog(null);
    } catch (e) {
      if (e.status !== 401) setDialogError(e.message);
    }
  };

  if (loadError && !data.loaded) {
    return (
      <section>
        <h2>{project}</h2>
        <p class="field-error" role="alert">{loadError}</p>
        <a href="#/">All projects</a>
      </section>
    );
  }
  if (!data.loaded) return <p class="muted" aria-busy="true">Loading {project}…</p>;

  const { branches, snapshots } = data;
  const selectedRef = selectedBranch ? `${project}/${selectedBranch}` : null;
  const selectedListed = branches.find((b) => branchRef(b) === selectedRef);
  const info = data.project ?? {};

  // Protecting takes nothing away, so it goes without a confirmation; if the server refuses,
  // the reason shows above the table.
  const protect = (b) => {
    const ref = branchRef(b);
    setActionError('');
    runMutation(`Protect ${ref}`, project, ref, () => api.protectBranch(project, b.name)).catch((e) => {
      if (e.status !== 401) setActionError(`Protect ${ref}: ${e.message}`);
    });
  };

  const onAction = (verb, b) => {
    if (verb === 'create') open('create', b, { kind: 'branch', parent: branchRef(b) });
    else if (verb === 'protect') protect(b);
    else open(verb, b);
  };

  // The label filter: all branches while it is empty or not valid (it says why).
  const labelFilter = parseLabelFilter(filter);
  const filtering = !labelFilter.problem && labelFilter.terms.length > 0;
  const shown = filtering ? branches.filter((b) => matchesLabels(b.labels, labelFilter.terms)) : branches;
  const isProtected = (r) => !!branches.find((x) => branchRef(x) === r)?.protected;

  let dialogNode = null;
  if (dialog) {
    const b = dialog.branch;
    const ref = b ? branchRef(b) : '';
    const common = { onClose: close, error: dialogError, refName: ref };
    switch (dialog.verb) {
      case 'create':
        dialogNode = (
          <CreateBranchDialog
            project={project}
            branches={branches}
            snapshots={snapshots}
            initial={dialog.initial}
            onClose={close}
            error={dialogError}
            loadWindow={(r) => {
              const [p, ...rest] = r.split('/');
              return api.branchWal(p, rest.join('/')).then((w) => w?.window ?? null);
            }}
            onSubmit={(body) =>
              send(`Create ${project}/${body.name}`, `${project}/${body.name}`, () =>
                api.createBranch(project, body),
              )
            }
          />
        );
        break;
      case 'reset':
        dialogNode = (
          <ResetDialog
            {...common}
            parent={b.parent}
            isProtected={!!b.protected}
            snapshots={snapshots.filter((s) => s.branch === ref || s.branch === b.parent)}
            onSubmit={(body) => send(`Reset ${ref}`, ref, () => api.resetBranch(project, b.name, body))}
          />
        );
        break;
      case 'snapshot':
        dialogNode = (
          <SnapshotDialog
            {...common}
            onSubmit={(body) => send(`Snapshot ${ref}`, ref, () => api.snapshotBranch(project, b.name, body))}
          />
        );
        break;
      case 'delete': {
        const dependents = dependentsOf(branches, ref);
        dialogNode = (
          <DeleteDialog
            {...common}
            dependents={dependents}
            protectedRefs={[ref, ...dependents].filter(isProtected)}
            onSubmit={(recursive, force) =>
              send(`Delete ${ref}`, ref, () => api.deleteBranch(project, b.name, recursive, force))
            }
          />
        );
        break;
      }
      case 'unprotect':
        dialogNode = (
          <VerbDialog
            {...common}
            verb="unprotect"
            onSubmit={() => send(`Unprotect ${ref}`, ref, () => api.unprotectBranch(project, b.name))}
          />
        );
        break;
      case 'ttl':
        dialogNode = (
          <TtlDialog
            {...common}
            branch={b}
            onSubmit={(body) => send(`Set TTL ${ref}`, ref, () => api.setBranch(project, b.name, body))}
          />
        );
        break;
      default:
        dialogNode = (
          <VerbDialog
            {...common}
            verb={dialog.verb}
            onSubmit={() =>
              send(`${dialog.verb[0].toUpperCase()}${dialog.verb.slice(1)} ${ref}`, ref, () =>
                api.branchVerb(project, b.name, dialog.verb),
              )
            }
          />
        );
    }
  }

  return (
    <section aria-labelledby="project-title">
      <header class="view-head">
        <div>
          <nav class="crumbs" aria-label="Breadcrumb">
            <a href="#/">Projects</a> / <span aria-current="page">{project}</span>
          </nav>
          <h2 id="project-title">{project}</h2>
          <p class="muted">
            {info.runtime || DASH} · PostgreSQL {info.pg_version || DASH} · {branches.length} branch
            {branches.length === 1 ? '' : 'es'} · proxy route leads to{' '}
            <strong>{info.active_branch || DASH}</strong>
          </p>
        </div>
        <button
          type="button"
          class="btn btn-primary"
          data-testid="new-branch"
          disabled={readOnly || branches.length === 0}
          onClick={() => open('create', null, { kind: 'branch' })}
        >
          New branch
        </button>
      </header>
      {loadError && (
        <p class="field-error" role="status">
          Showing older data: {loadError}
        </p>
      )}

      <section class="panel" aria-labelledby="lineage-title">
        <div class="panel-head">
          <h3 id="lineage-title">Lineage</h3>
          <TreeLegend />
        </div>
        <LineageTree
          project={project}
          branches={branches}
          snapshots={snapshots}
          selected={selectedRef}
          readOnly={readOnly}
          onSnapshot={(s) =>
            open('create', null, { kind: 'snapshot', snapshotId: s.id, parent: s.branch })
          }
        />
      </section>

      <section class="panel" aria-labelledby="branches-title">
        <div class="panel-head">
          <h3 id="branches-title">Branches</h3>
          <div class="label-filter">
            <label for="label-filter">Filter by label</label>
            <input
              id="label-filter"
              type="search"
              data-testid="label-filter"
              value={filter}
              placeholder="key=value or key"
              autoComplete="off"
              spellcheck={false}
              aria-invalid={labelFilter.problem ? 'true' : undefined}
              aria-describedby="label-filter-status"
              onInput={(e) => setFilter(e.currentTarget.value)}
            />
          </div>
        </div>
        <p
          id="label-filter-status"
          class={labelFilter.problem ? 'field-error small' : 'muted small'}
          role="status"
          data-testid="label-filter-status"
        >
          {labelFilter.problem
            ? `${labelFilter.problem} (showing all branches)`
            : filtering
              ? `${shown.length} of ${branches.length} branches have ${labelFilter.terms
                  .map((t) => (t.value === null ? t.key : `${t.key}=${t.value}`))
                  .join(' and ')}`
              : ''}
        </p>
        {actionError && (
          <div class="field-error action-error" role="alert" data-testid="action-error">
            <span>{actionError}</span>
            <button type="button" class="btn btn-small" onClick={() => setActionError('')}>
              Dismiss
            </button>
          </div>
        )}
        <BranchTable
          project={project}
          branches={shown}
          selected={selectedRef}
          onAction={onAction}
          readOnly={readOnly}
          emptyText={filtering ? 'No branch has these labels.' : undefined}
        />
      </section>

      {selectedBranch && (
        <BranchDetails
          api={api}
          project={project}
          branch={selectedBranch}
          listed={selectedListed}
          version={`${version}:${selectedListed?.state}`}
          onClose={() => {
            location.hash = projectHref(project);
          }}
        />
      )}
      <ProjectOperations api={api} project={project} version={version} />
      {dialogNode}
    </section>
  );
}
