import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  // Served from wherever the built folder lands (the mock Flume's --static).
  base: "./",
  // The package loads its wasm with `new URL(..., import.meta.url)`: Vite copies it in a
  // build; the dev server must serve it from the package unbundled.
  optimizeDeps: { exclude: ["headwater-browser"] },
  // checks.html runs headwater once in a module worker.
  worker: { format: "es" },
  build: {
    target: "es2022",
    rollupOptions: {
      // The app, and the page that checks the package's contract (and benchmarks it).
      input: {
        main: resolve(import.meta.dirname, "index.html"),
        checks: resolve(import.meta.dirname, "checks.html"),
      },
    },
  },
});
