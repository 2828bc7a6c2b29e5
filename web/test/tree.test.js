import { describe, expect, it } from 'vitest';
import { buildLineage, dependentsOf, layoutLineage } from '../src/tree.js';
import { branch, branches, snapshot, snapshots } from './fixtures.js';

const byId = (layout) => new Map(layout.nodes.map((n) => [n.id, n]));
const parentOf = (layout, id) => layout.edges.find((e) => e.to === id)?.from ?? null;

describe('layoutLineage', () => {
  const layout = layoutLineage(branches, snapshots);

  it('has a node per branch and per snapshot of the project worth showing', () => {
    const ids = layout.nodes.map((n) => n.id).sort();
    expect(ids).toEqual(
      [
        'branch:demo/main',
        'branch:demo/dev',
        'branch:demo/pr-42',
        'branch:demo/pr-43',
        'branch:demo/pr-42-fix',
        'snapshot:1',
        'snapshot:2',
        'snapshot:5',
      ].sort(),
    );
  });

  it('puts snapshots between a parent and the branches cloned from them', () => {
    expect(parentOf(layout, 'snapshot:1')).toBe('branch:demo/main');
    expect(parentOf(layout, 'snapshot:2')).toBe('branch:demo/main');
    expect(parentOf(layout, 'branch:demo/dev')).toBe('snapshot:1');
    expect(parentOf(layout, 'branch:demo/pr-42')).toBe('snapshot:1');
    expect(parentOf(layout, 'branch:demo/pr-43')).toBe('snapshot:2');
    expect(parentOf(layout, 'snapshot:5')).toBe('branch:demo/dev');
  });

  it('links a branch whose snapshot is not listed straight to its parent', () => {
    expect(parentOf(layout, 'branch:demo/pr-42-fix')).toBe('branch:demo/pr-42');
  });

  it('has one root and an edge into every other node', () => {
    expect(parentOf(layout, 'branch:demo/main')).toBe(null);
    expect(layout.edges).toHaveLength(layout.nodes.length - 1);
  });

  it('places children one column right of their parent', () => {
    const nodes = byId(layout);
    for (const e of layout.edges) {
      expect(nodes.get(e.to).depth).toBe(nodes.get(e.from).depth + 1);
      expect(nodes.get(e.to).x).toBeGreaterThan(nodes.get(e.from).x);
    }
  });

  it('never puts two nodes on the same spot, and keeps rows apart', () => {
    const rowHeight = 50;
    const l = layoutLineage(branches, snapshots, { rowHeight, colWidth: 150, margin: 10 });
    for (let i = 0; i < l.nodes.length; i++) {
      for (let j = i + 1; j < l.nodes.length; j++) {
        const a = l.nodes[i];
        const b = l.nodes[j];
        if (a.x === b.x) expect(Math.abs(a.y - b.y)).toBeGreaterThanOrEqual(rowHeight / 2);
      }
    }
    for (const n of l.nodes) {
      expect(n.x).toBeGreaterThanOrEqual(10);
      expect(n.y).toBeGreaterThanOrEqual(10);
      expect(n.x).toBeLessThanOrEqual(l.width - 10);
      expect(n.y).toBeLessThanOrEqual(l.height - 10);
    }
  });

  it('does not overlap in a wide, deep random tree either', () => {
    // A deterministic pseudo-random forest of 200 branches.
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const list = [branch('main', { parent: null, created_at: '2026-01-01T00:00:00Z' })];
    const snaps = [];
    for (let i = 1; i < 200; i++) {
      const parent = list[Math.floor(rand() * list.length)];
      const fromSnap = rand() < 0.5;
      const sid = 1000 + i;
      if (fromSnap) snaps.push(snapshot(sid, `demo/${parent.name}`));
      list.push(
        branch(`b${i}`, {
          parent: `demo/${parent.name}`,
          snapshot_id: fromSnap ? sid : null,
          created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
        }),
      );
    }
    const l = layoutLineage(list, snaps, { rowHeight: 40, colWidth: 100, margin: 0 });
    expect(l.nodes).toHaveLength(list.length + snaps.length);
    const spots = new Set(l.nodes.map((n) => `${n.x},${n.y}`));
    expect(spots.size).toBe(l.nodes.length);
    // Same column: at least half a row apart.
    const byColumn = new Map();
    for (const n of l.nodes) {
      if (!byColumn.has(n.x)) byColumn.set(n.x, []);
      byColumn.get(n.x).push(n.y);
    }
    for (const ys of byColumn.values()) {
      ys.sort((a, b) => a - b);
      for (let i = 1; i < ys.length; i++) expect(ys[i] - ys[i - 1]).toBeGreaterThanOrEqual(20);
    }
  });

  it('orders siblings by age', () => {
    const nodes = byId(layout);
    expect(nodes.get('branch:demo/dev').y).toBeLessThan(nodes.get('branch:demo/pr-42').y);
    expect(nodes.get('snapshot:1').y).toBeLessThan(nodes.get('snapshot:2').y);
  });

  it('is empty for no branches', () => {
    expect(layoutLineage([], [])).toEqual({ nodes: [], edges: [], width: 0, height: 0 });
  });

  it('makes a root of a branch whose parent is missing, and survives a cycle', () => {
    const odd = [
      branch('orphan', { parent: 'demo/gone' }),
      branch('a', { parent: 'demo/b' }),
      branch('b', { parent: 'demo/a' }),
    ];
    const roots = buildLineage(odd, []);
    expect(roots.map((r) => r.id)).toContain('branch:demo/orphan');
    const l = layoutLineage(odd, []);
    expect(l.nodes).toHaveLength(3);
    expect(l.edges).toHaveLength(1);
  });

  it('hangs a branch under its parent when its snapshot is of another branch (a reset)', () => {
    const list = [
      branch('main', { parent: null }),
      branch('dev', { snapshot_id: 7 }),
    ];
    const l = layoutLineage(list, [snapshot(7, 'demo/dev', { implicit: false })]);
    expect(parentOf(l, 'branch:demo/dev')).toBe('branch:demo/main');
    expect(parentOf(l, 'snapshot:7')).toBe('branch:demo/dev');
  });
});

describe('dependentsOf', () => {
  it('lists children and their children, nearest first', () => {
    const list = [
      ...branches,
      branch('pr-42-fix-2', { parent: 'demo/pr-42-fix' }),
    ];
    expect(dependentsOf(list, 'demo/pr-42')).toEqual(['demo/pr-42-fix', 'demo/pr-42-fix-2']);
    expect(dependentsOf(list, 'demo/main')).toEqual([
      'demo/dev',
      'demo/pr-42',
      'demo/pr-43',
      'demo/pr-42-fix',
      'demo/pr-42-fix-2',
    ]);
  });
  it('is empty for a leaf and an unknown branch', () => {
    expect(dependentsOf(branches, 'demo/dev')).toEqual([]);
    expect(dependentsOf(branches, 'demo/nope')).toEqual([]);
  });
  it('terminates on a cycle', () => {
    const list = [branch('a', { parent: 'demo/b' }), branch('b', { parent: 'demo/a' })];
    expect(dependentsOf(list, 'demo/a')).toEqual(['demo/b']);
  });
});
