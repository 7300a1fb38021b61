import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a running gateway (SOC_GATEWAY_URL, default make up's).
const gateway = process.env.SOC_GATEWAY_URL ?? "http://127.0.0.1:8000";
const api = ["/auth", "/admin", "/tenant", "/integration", "/ws", "/.well-known"];

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      output: {
        // Hashed names: the gateway serves /assets/* as immutable for a year, index.html never cached.
        manualChunks: (id) => (id.includes("node_modules/echarts") || id.includes("node_modules/zrender") ? "charts" : undefined),
      },
    },
  },
  server: {
    proxy: Object.fromEntries(api.map((p) => [p, { target: gateway, ws: p === "/ws", changeOrigin: false }])),
  },
});
