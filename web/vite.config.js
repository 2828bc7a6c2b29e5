import { defineConfig } from 'vite';

// Preact without a plugin: Vite's own JSX transform (Oxc) with Preact's automatic runtime.
// `base: './'` makes every asset path relative, so `pgbranch serve` can serve dist/ at `/`
// (or anywhere else) as plain files.
export default defineConfig({
  base: './',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline data: URLs for the CSP a server may set; no source maps in what ships.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a running `pgbranch serve`.
    proxy: { '/api': 'http://127.0.0.1:8432' },
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.{js,jsx}'],
  },
});
