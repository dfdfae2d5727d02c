/* code-executor tool bridge (deno and node). Joined into one line before the user's code so
   that the user's line numbers stay right: no line comments, every statement ends with ;. */
(() => {
  const SOCKET = __CE_SOCKET__;
  const TOKEN = __CE_TOKEN__;
  const MAX = 1048576;
  let seq = 0;
  let netModule = null;
  const request = (method, params) => {
    const line = JSON.stringify({ token: TOKEN, id: ++seq, method, params }) + "\n";
    const size = new TextEncoder().encode(line).length;
    if (size > MAX) {
      const e = new Error(`request too large: ${size} bytes, the limit is ${MAX} bytes (1 MiB); pass smaller arguments`);
      e.kind = "too_large";
      return Promise.reject(e);
    }
    netModule ??= import("node:net");
    return netModule.then((net) => new Promise((resolve, reject) => {
      let buf = "";
      let done = false;
      const sock = net.createConnection(SOCKET);
      const finish = (f) => { if (!done) { done = true; sock.destroy(); f(); } };
      sock.setEncoding("utf8");
      sock.on("connect", () => { sock.write(line); });
      sock.on("data", (d) => {
        buf += d;
        const i = buf.indexOf("\n");
        if (i < 0) { return; }
        let msg;
        try { msg = JSON.parse(buf.slice(0, i)); } catch (_) { finish(() => reject(new Error("tool bridge: unreadable reply"))); return; }
        if (msg.error) {
          const e = new Error(msg.error.message);
          e.kind = msg.error.kind;
          finish(() => reject(e));
          return;
        }
        finish(() => resolve(msg.result));
      });
      sock.on("error", (e) => { finish(() => reject(new Error(`tool bridge unreachable: ${e.message}`))); });
      sock.on("close", () => { finish(() => reject(new Error("tool bridge closed the connection without an answer (has the run ended?)"))); });
    }));
  };
  const define = (name, fn) => { Object.defineProperty(globalThis, name, { value: fn, writable: true, configurable: true, enumerable: false }); };
  define("callMCPTool", (name, params = {}) => request("callTool", { name, arguments: params }));
  define("discoverMCPTools", (options = {}) => request("discover", { search: (options && options.search) || [] }));
  define("getToolSchema", (name) => request("getToolSchema", { name }));
  define("searchTools", (query, limit = 10) => request("searchTools", { query, limit }));
})();
