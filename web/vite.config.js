// The dashboard is built into ANISOFLOW_DASHBOARD_OUT (CMake passes <build>/web/dist) and served
// by anisoflow-gateway from http.static_dir: relative asset paths, no CDN at run time.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: process.env.ANISOFLOW_DASHBOARD_OUT || "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
});
