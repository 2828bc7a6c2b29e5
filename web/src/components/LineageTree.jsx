import { layoutLineage } from '../tree.js';
import { branchHref } from '../router.js';

const BRANCH_W = 132;
const BRANCH_H = 36;
const SNAP_R = 9;

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// Half the width of a node, where edges attach.
const halfWidth = (node) => (node.kind === 'branch' ? BRANCH_W / 2 : SNAP_R);

// The lineage of a project as an SVG graph (layout in tree.js). Branch nodes are links that
// select the branch; snapshot nodes are buttons that open "create a branch from this
// snapshot". Colours come from the state classes in styles.css, with the state also written.
export function LineageTree({ project, branches, snapshots, selected, onSnapshot, readOnly }) {
  const { nodes, edges, width, height } = layoutLineage(branches, snapshots, {
    colWidth: 176,
    rowHeight: 58,
    marginX: 8 + BRANCH_W / 2,
    marginY: 8 + BRANCH_H / 2,
  });
  if (!nodes.length) return <p class="muted">No branches yet.</p>;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const w = width;
  const h = height + 4;

  return (
    <div class="tree-scroll">
      <svg
        class="lineage"
        width={w}
        height={h}
        viewBox={`0 0 ${w} ${h}`}
        role="group"
        aria-label={`Lineage of ${project}: branches and the snapshots they were made from`}
        data-testid="lineage-tree"
      >
        <g class="edges">
          {edges.map((e) => {
            const a = byId.get(e.from);
            const b = byId.get(e.to);
            const x1 = a.x + halfWidth(a);
            const x2 = b.x - halfWidth(b);
            const mx = (x1 + x2) / 2;
            return (
              <path
                key={`${e.from}->${e.to}`}
                class="edge"
                data-testid={`edge-${e.from}-${e.to}`}
                d={`M${x1},${a.y} C${mx},${a.y} ${mx},${b.y} ${x2},${b.y}`}
              />
            );
          })}
        </g>
        <g class="nodes">
          {nodes.map((n) => (n.kind === 'branch' ? (
            <BranchNode key={n.id} node={n} selected={n.ref === selected} />
          ) : (
            <SnapshotNode key={n.id} node={n} onSnapshot={onSnapshot} readOnly={readOnly} />
          )))}
        </g>
      </svg>
    </div>
  );
}

function BranchNode({ node, selected }) {
  const b = node.data;
  const state = (b.state || 'unknown').replace(/[^a-z]/g, '');
  return (
    <a
      href={branchHref(b.project, b.name)}
      class={`node node-branch state-${state}${selected ? ' selected' : ''}`}
      data-testid={`node-branch-${node.ref}`}
      data-state={b.state}
      aria-label={`Branch ${node.ref}, ${b.state}${b.active ? ', active' : ''}`}
    >
      <title>{`${node.ref} — ${b.state}`}</title>
      <rect
        x={node.x - BRANCH_W / 2}
        y={node.y - BRANCH_H / 2}
        width={BRANCH_W}
        height={BRANCH_H}
        rx="8"
      />
      <text x={node.x} y={node.y - 3} class="node-name" text-anchor="middle">
        {(b.active ? '★ ' : '') + truncate(b.name, 15)}
      </text>
      <text x={node.x} y={node.y + 11} class="node-state" text-anchor="middle">
        {b.state}
      </text>
    </a>
  );
}

function SnapshotNode({ node, onSnapshot, readOnly }) {
  const s = node.data;
  const label = s.label ? truncate(s.label, 18) : s.implicit ? 'implicit' : '';
  const activate = () => {
    if (!readOnly) onSnapshot?.(s);
  };
  return (
    <g
      class={`node node-snapshot${s.implicit ? ' implicit' : ''}`}
      data-testid={`node-snapshot-${s.id}`}
      role={readOnly ? undefined : 'button'}
      tabIndex={readOnly ? undefined : 0}
      aria-label={`Snapshot ${s.id} of ${s.branch}${s.label ? ` (${s.label})` : ''}: create a branch from it`}
      onClick={activate}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          activate();
        }
      }}
    >
      <title>{`snapshot #${s.id} of ${s.branch}${s.label ? ` — ${s.label}` : ''}, ${s.created_at}`}</title>
      <circle cx={node.x} cy={node.y} r={SNAP_R} />
      <text x={node.x} y={node.y - SNAP_R - 5} class="node-name" text-anchor="middle">
        #{s.id}
      </text>
      {label && (
        <text x={node.x} y={node.y + SNAP_R + 13} class="node-state" text-anchor="middle">
          {label}
        </text>
      )}
    </g>
  );
}

export function TreeLegend() {
  return (
    <ul class="legend" aria-label="Legend">
      {['running', 'stopped', 'suspended', 'creating', 'failed'].map((s) => (
        <li key={s}>
          <span class={`swatch state-${s}`} aria-hidden="true" />
          {s}
        </li>
      ))}
      <li>
        <span class="swatch snapshot" aria-hidden="true" />
        snapshot
      </li>
    </ul>
  );
}
