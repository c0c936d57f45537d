import { defineConfig } from "vite";

// The build goes into the Python package, which `reeldb serve` serves at `/` (assets at /assets).
export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/reeldb/console/static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
  },
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  server: {
    // `npm run dev` proxies the API to a local `reeldb serve` (make run).
    proxy: { "/v1": "http://127.0.0.1:8000" },
  },
});
