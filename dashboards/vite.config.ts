import { defineConfig } from 'vite';

// The console is served by the `tidewatch` binary at `/` (with SPA fallback), so
// every API call is same-origin. During development `npm run dev` proxies the
// API paths to a running `tidewatch up` (TIDEWATCH_URL, default :9800).
const target = process.env.TIDEWATCH_URL ?? 'http://127.0.0.1:9800';
const proxied = ['/api', '/loki', '/-/'];

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', target: 'es2022', chunkSizeWarningLimit: 400 },
  server: {
    proxy: Object.fromEntries(proxied.map((p) => [p, { target, ws: true, changeOrigin: false }])),
  },
});
