// The lineage of a project: its branches and the snapshots they were cloned from, as a tree,
// and a layout of that tree for the SVG graph. Pure functions, no DOM.
//
// Shapes (src/cli/output.cc): a branch has "project", "name", "parent" ("demo/main" or null for
// a project's main) and "snapshot_id" (the snapshot it was cloned from, or null); a snapshot
// has "id", "branch" (whose data it holds, "demo/main"), "implicit" and "dependents" (the
// branches cloned from it, "demo/dev").
//
// Edges: parent branch -> snapshot -> each branch cloned from that snapshot. A branch whose
// snapshot is not in the list (or is not its parent's: a reset can point a branch at a
// snapshot of its own) hangs directly under its parent branch.

export function branchRef(branch) {
  return `${branch.project}/${branch.name}`;
}

export const branchNodeId = (ref) => `branch:${ref}`;
export const snapshotNodeId = (id) => `snapshot:${id}`;

function byCreated(a, b) {
  const ta = Date.parse(a.created_at ?? '') || 0;
  const tb = Date.parse(b.created_at ?? '') || 0;
  if (ta !== tb) return ta - tb;
  return String(a.key).localeCompare(String(b.key));
}

// The tree as nodes with children (not yet placed). Returns the roots: normally the project's
// main; a branch whose parent is unknown (or that would close a cycle) becomes a root too.
export function buildLineage(branches, snapshots = []) {
  const branchByRef = new Map();
  for (const b of branches) branchByRef.set(branchRef(b), b);

  const nodes = new Map();
  for (const b of branches) {
    const ref = branchRef(b);
    nodes.set(branchNodeId(ref), {
      id: branchNodeId(ref),
      kind: 'branch',
      key: ref,
      ref,
      created_at: b.created_at,
      data: b,
      children: [],
      parentId: null,
    });
  }

  // Which snapshots each branch was cloned from, so that implicit snapshots without a
  // dependent (made and left by a reset, about to be swept) stay out of the picture.
  const usedSnapshots = new Set();
  for (const b of branches) if (b.snapshot_id != null) usedSnapshots.add(Number(b.snapshot_id));

  for (const s of snapshots) {
    if (!branchByRef.has(s.branch)) continue; // another project's
    const used = usedSnapshots.has(Number(s.id)) || (s.dependents?.length ?? 0) > 0;
    if (s.implicit && !used) continue;
    const id = snapshotNodeId(s.id);
    nodes.set(id, {
      id,
      kind: 'snapshot',
      key: `#${s.id}`,
      snapshotId: Number(s.id),
      created_at: s.created_at,
      data: s,
      children: [],
      parentId: branchNodeId(s.branch),
    });
  }

  // Parent of each branch node.
  for (const b of branches) {
    const node = nodes.get(branchNodeId(branchRef(b)));
    if (!b.parent || !branchByRef.has(b.parent)) continue;
    const snap = b.snapshot_id != null ? nodes.get(snapshotNodeId(b.snapshot_id)) : null;
    node.parentId = snap && snap.data.branch === b.parent ? snap.id : branchNodeId(b.parent);
  }

  // A parent chain that loops (a catalog can't hold one, but a list read mid-change might
  // look like it) is cut where it closes: that node becomes a root.
  for (const node of nodes.values()) {
    const seen = new Set([node.id]);
    let cur = node;
    while (cur.parentId) {
      if (seen.has(cur.parentId)) {
        cur.parentId = null;
        break;
      }
      seen.add(cur.parentId);
      cur = nodes.get(cur.parentId);
    }
  }

  const roots = [];
  for (const node of nodes.values()) {
    const parent = node.parentId ? nodes.get(node.parentId) : null;
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  for (const node of nodes.values()) node.children.sort(byCreated);
  // main first, then other roots by age.
  roots.sort((a, b) => {
    const am = a.kind === 'branch' && !a.data.parent ? 0 : 1;
    const bm = b.kind === 'branch' && !b.data.parent ? 0 : 1;
    return am - bm || byCreated(a, b);
  });
  return roots;
}

// Places the tree left to right: depth gives the column, and every leaf gets a row of its
// own, in order; an inner node sits midway between its first and last child. Because each
// subtree takes a contiguous run of rows that no other subtree shares, no two nodes can land
// on the same spot (a simple tidy tree, at the cost of some height).
//
// Returns {nodes: [{id, kind, depth, row, x, y, ...}], edges: [{from, to}], width, height},
// x and y being node centres; marginX/marginY (default `margin`) pad the drawing.
export function layoutLineage(branches, snapshots = [], options = {}) {
  const { colWidth = 180, rowHeight = 56, margin = 32 } = options;
  const { marginX = margin, marginY = margin } = options;
  const roots = buildLineage(branches, snapshots);
  const placed = [];
  const edges = [];
  let nextRow = 0;
  let maxDepth = 0;

  function place(node, depth) {
    maxDepth = Math.max(maxDepth, depth);
    let row;
    if (node.children.length === 0) {
      row = nextRow;
      nextRow += 1;
    } else {
      const rows = node.children.map((child) => {
        edges.push({ from: node.id, to: child.id });
        return place(child, depth + 1);
      });
      row = (rows[0] + rows[rows.length - 1]) / 2;
    }
    const { children, ...rest } = node;
    placed.push({ ...rest, depth, row, x: marginX + depth * colWidth, y: marginY + row * rowHeight });
    return row;
  }
  for (const root of roots) place(root, 0);

  // Nodes in a stable order: by row, then column.
  placed.sort((a, b) => a.row - b.row || a.depth - b.depth);
  return {
    nodes: placed,
    edges,
    width: placed.length ? marginX * 2 + maxDepth * colWidth : 0,
    height: placed.length ? marginY * 2 + Math.max(0, nextRow - 1) * rowHeight : 0,
  };
}

// The branches that depend on `ref` (their parent is it, recursively), nearest first; what a
// recursive delete of `ref` removes besides it.
export function dependentsOf(branches, ref) {
  const children = new Map();
  for (const b of branches) {
    if (!b.parent) continue;
    if (!children.has(b.parent)) children.set(b.parent, []);
    children.get(b.parent).push(branchRef(b));
  }
  const out = [];
  const seen = new Set([ref]);
  const queue = [ref];
  while (queue.length) {
    const cur = queue.shift();
    for (const child of (children.get(cur) ?? []).sort()) {
      if (seen.has(child)) continue;
      seen.add(child);
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}
