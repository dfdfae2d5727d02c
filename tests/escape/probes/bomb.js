// Memory bombs for node and deno: `node bomb.js KIND` / `deno run -A bomb.js KIND`.
// KIND: arrays (JS heap), buffers (off-heap, node), wasm (WebAssembly.Memory grown and touched).
const isDeno = typeof Deno !== "undefined";
const kind = isDeno ? Deno.args[0] : process.argv[2];
const say = (o) => console.log(JSON.stringify(o));
const keep = [];
let mib = 0;
try {
  if (kind === "arrays") {
    for (;;) {
      const a = new Array(1 << 20);
      for (let i = 0; i < a.length; i++) a[i] = i + 0.5; // boxed doubles: ~16+ MiB per array
      keep.push(a);
      mib += 8;
    }
  } else if (kind === "buffers") {
    for (;;) {
      keep.push(Buffer.alloc(16 << 20, 1)); // filled: pages touched
      mib += 16;
    }
  } else if (kind === "wasm") {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
    for (;;) {
      mem.grow(256); // +16 MiB
      const u8 = new Uint8Array(mem.buffer);
      for (let i = u8.length - (16 << 20); i < u8.length; i += 4096) u8[i] = 1;
      mib += 16;
    }
  } else if (kind === "spin") {
    say({ a: "spin", ret: "spinning" });
    for (;;) {}
  }
} catch (e) {
  say({ a: "bomb:" + kind, errno: String(e && e.name), msg: String(e && e.message), mib });
}
