//! Guest-side support: what a runtime inside the sandbox needs to use the egress proxy.
//!
//! deno honours `HTTP_PROXY`/`HTTPS_PROXY` (CONNECT for https) and so does python's urllib, so
//! they need nothing beyond [`proxy_env`](super::forwarder::proxy_env). node 20 ignores both
//! variables in `fetch` and in `http`/`https` (`NODE_USE_ENV_PROXY` exists only in newer node,
//! and node 20 bundles no importable undici for a `ProxyAgent`), so node code gets
//! [`NODE_PROXY_PRELUDE`] prepended.
//!
//! The prelude is a convenience, not a control: without it a node request simply fails, because
//! the sandbox has no route anywhere; with it, the proxy still decides every connection.

/// Makes node 20's global `fetch` and the `http`/`https` modules go through `HTTP_PROXY` and
/// `HTTPS_PROXY` (or their lower-case forms).
///
/// - `http.globalAgent` becomes an agent that connects to the proxy and sends absolute-form
///   request targets; `https.globalAgent` one that opens a `CONNECT` tunnel and runs TLS over it
///   (`tls.connect({ socket })`, certificate checks unchanged). Requests that pass their own
///   `agent` keep it.
/// - `globalThis.fetch` is replaced by a wrapper over those agents that returns a standard
///   `Response` (streamed body, redirects followed as `fetch` does, `AbortSignal` honoured).
///   Non-http(s) URLs (`data:`, `blob:`) go to the original `fetch`. It does not ask for
///   compressed responses, so bodies arrive as the server sent them.
/// - A refused tunnel surfaces as an error that quotes the proxy's reason.
///
/// It is one block using `process.getBuiltinModule` (node ≥ 20.16), so it declares no names at
/// module scope and works prepended to an ES module or a script alike; only `//` comments would
/// be unsafe in it, so there are none. It shifts the user's line numbers by
/// [`node_prelude_lines`]; use [`prepend_node_prelude`] to keep a shebang first.
pub const NODE_PROXY_PRELUDE: &str = r#"{ /* code-executor: route http, https and fetch through HTTP(S)_PROXY */
  const ce_http = process.getBuiltinModule('node:http');
  const ce_https = process.getBuiltinModule('node:https');
  const ce_net = process.getBuiltinModule('node:net');
  const ce_tls = process.getBuiltinModule('node:tls');
  const { Readable: ce_Readable } = process.getBuiltinModule('node:stream');
  const ce_env = process.env;
  const ce_url = (v) => { try { return v ? new URL(v) : null; } catch { return null; } };
  const ce_httpProxy = ce_url(ce_env.HTTP_PROXY || ce_env.http_proxy);
  const ce_httpsProxy = ce_url(ce_env.HTTPS_PROXY || ce_env.https_proxy) || ce_httpProxy;
  const ce_bracket = (h) => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  const ce_proxyPort = (u) => Number(u.port) || 80;
  if ((ce_httpProxy || ce_httpsProxy) && !globalThis.__codeExecutorProxy) {
    Object.defineProperty(globalThis, '__codeExecutorProxy', { value: true });
    class ProxyHttpAgent extends ce_http.Agent {
      addRequest(req, options) {
        if (ce_httpProxy && req.method !== 'CONNECT' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(req.path)) {
          const host = ce_bracket(options.hostname || options.host || 'localhost');
          const target = `http://${host}:${options.port || 80}${req.path}`;
          if (req._header) {
            req._header = req._header.replace(/^(\S+) \S+/, `$1 ${target}`);
          }
          req.path = target;
        }
        super.addRequest(req, options);
      }
      createConnection(options, cb) {
        if (!ce_httpProxy) return super.createConnection(options, cb);
        return ce_net.connect({ host: ce_httpProxy.hostname, port: ce_proxyPort(ce_httpProxy) });
      }
    }
    const ce_direct = new ce_http.Agent({ keepAlive: false });
    class ProxyHttpsAgent extends ce_https.Agent {
      createConnection(options, cb) {
        if (!ce_httpsProxy) return super.createConnection(options, cb);
        const host = options.hostname || options.host || 'localhost';
        const authority = `${ce_bracket(host)}:${options.port || 443}`;
        const connect = ce_http.request({
          host: ce_httpsProxy.hostname, port: ce_proxyPort(ce_httpsProxy), method: 'CONNECT',
          path: authority, headers: { host: authority }, agent: ce_direct,
        });
        connect.once('connect', (res, socket, head) => {
          if (res.statusCode !== 200) {
            socket.destroy();
            const why = head && head.length ? `: ${head.toString().trim()}` : '';
            cb(new Error(`egress proxy refused CONNECT ${authority} (${res.statusCode} ${res.statusMessage})${why}`));
            return;
          }
          if (head && head.length) socket.unshift(head);
          const servername = options.servername || (ce_net.isIP(host) ? undefined : host);
          cb(null, ce_tls.connect({ ...options, socket, servername }));
        });
        connect.once('error', cb);
        connect.end();
      }
    }
    const ce_agents = {
      'http:': new ProxyHttpAgent({ keepAlive: false }),
      'https:': new ProxyHttpsAgent({ keepAlive: false }),
    };
    ce_http.globalAgent = ce_agents['http:'];
    ce_https.globalAgent = ce_agents['https:'];
    const ce_nativeFetch = globalThis.fetch;
    const ce_send = (url, method, headers, body, signal) => new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? ce_https : ce_http;
      const req = mod.request(url, { method, headers, agent: ce_agents[url.protocol], signal }, resolve);
      req.once('error', reject);
      req.end(body);
    });
    globalThis.fetch = async function fetch(input, init) {
      const request = new Request(input, init);
      let url = new URL(request.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return ce_nativeFetch(input, init);
      let method = request.method;
      const headers = {};
      request.headers.forEach((value, name) => { headers[name] = value; });
      if (!('accept' in headers)) headers.accept = '*/*';
      let body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
      for (let redirects = 0; ; redirects++) {
        const res = await ce_send(url, method, headers, body, request.signal);
        const status = res.statusCode;
        const location = res.headers.location;
        if ([301, 302, 303, 307, 308].includes(status) && location && request.redirect !== 'manual') {
          res.resume();
          if (request.redirect === 'error') throw new TypeError(`fetch failed: redirect to ${location} with redirect: "error"`);
          if (redirects >= 20) throw new TypeError('fetch failed: more than 20 redirects');
          const next = new URL(location, url);
          if ((status === 303 && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
            method = 'GET';
            body = undefined;
            for (const h of ['content-length', 'content-type', 'content-encoding', 'content-language', 'content-location']) delete headers[h];
          }
          if (next.origin !== url.origin) {
            for (const h of ['authorization', 'cookie', 'proxy-authorization']) delete headers[h];
          }
          url = next;
          continue;
        }
        const responseHeaders = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const hasBody = method !== 'HEAD' && ![101, 103, 204, 205, 304].includes(status);
        if (!hasBody) res.resume();
        const response = new Response(hasBody ? ce_Readable.toWeb(res) : null, {
          status, statusText: res.statusMessage, headers: responseHeaders,
        });
        Object.defineProperty(response, 'url', { value: url.href });
        Object.defineProperty(response, 'redirected', { value: redirects > 0 });
        return response;
      }
    };
  }
}
"#;

/// How many lines [`NODE_PROXY_PRELUDE`] adds before the user's code.
pub fn node_prelude_lines() -> usize {
    NODE_PROXY_PRELUDE.lines().count()
}

/// Returns `code` with [`NODE_PROXY_PRELUDE`] in front, after a `#!` line if there is one (a
/// shebang is only valid as the very first line).
pub fn prepend_node_prelude(code: &str) -> String {
    let mut out = String::with_capacity(NODE_PROXY_PRELUDE.len() + code.len() + 1);
    match code.strip_prefix("#!") {
        Some(_) => {
            let (shebang, rest) = code.split_at(code.find('\n').map_or(code.len(), |i| i + 1));
            out.push_str(shebang);
            if !shebang.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(NODE_PROXY_PRELUDE);
            out.push_str(rest);
        }
        None => {
            out.push_str(NODE_PROXY_PRELUDE);
            out.push_str(code);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_keeps_a_shebang_first() {
        let code = prepend_node_prelude("#!/usr/bin/env node\nconsole.log(1);\n");
        assert!(code.starts_with("#!/usr/bin/env node\n{ /* code-executor"));
        assert!(code.ends_with("}\nconsole.log(1);\n"));
        let code = prepend_node_prelude("console.log(1);");
        assert!(code.starts_with(NODE_PROXY_PRELUDE) && code.ends_with("console.log(1);"));
    }

    #[test]
    fn prelude_has_no_line_comments() {
        // A `//` comment would swallow code if the prelude were ever joined onto one line;
        // URLs inside strings and regexes (`://`, `:\/\/`) are the only allowed `//`.
        for line in NODE_PROXY_PRELUDE.lines() {
            let cleaned = line.replace("://", "").replace(":\\/\\/", "");
            assert!(!cleaned.contains("//"), "line comment in prelude: {line}");
        }
    }
}
