// Boundary probe for node and deno (node: modules work in both). One JSON line per check.
import fs from "node:fs";
import net from "node:net";
import process from "node:process";

const out = (name, o) => console.log(JSON.stringify({ name, ...o }));
function attempt(name, fn) {
  try {
    const r = fn();
    out(name, { ok: true, detail: String(r).slice(0, 200) });
  } catch (e) {
    out(name, { ok: false, errno: e.code ?? e.name, detail: String(e.message) });
  }
}
async function attemptAsync(name, fn) {
  try {
    const r = await fn();
    out(name, { ok: true, detail: String(r).slice(0, 200) });
  } catch (e) {
    out(name, { ok: false, errno: e.code ?? e.cause?.code ?? e.name, detail: String(e.message) });
  }
}
out("identity", { uid: process.getuid(), gid: process.getgid() });
for (const p of ["/probe-file", "/usr/probe-file", "/etc/probe-file"]) {
  attempt("write " + p, () => fs.writeFileSync(p, "x"));
}
attempt("write /workspace", () => fs.writeFileSync("/workspace/ok", "x"));
attempt("write /tmp", () => fs.writeFileSync("/tmp/ok", "x"));
const secret = process.env.SECRET_PATH;
if (secret) attempt("read SECRET_PATH", () => fs.readFileSync(secret, "utf8"));
const connect = (host, port) => new Promise((resolve, reject) => {
  const s = net.connect({ host, port, timeout: 3000 });
  s.on("connect", () => { s.destroy(); resolve("connected"); });
  s.on("error", reject);
  s.on("timeout", () => { s.destroy(); reject(Object.assign(new Error("timeout"), { code: "TIMEOUT" })); });
});
await attemptAsync("tcp outside", () => connect("1.1.1.1", 443));
if (process.env.HOST_PORT) await attemptAsync("host loopback", () => connect("127.0.0.1", Number(process.env.HOST_PORT)));
await attemptAsync("fetch outside", () => fetch("https://example.com/").then((r) => r.status));
