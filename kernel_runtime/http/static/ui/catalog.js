// The catalog for consumers (docs/reference/http-api.md, "Web pages"): search the products, open one,
// invoke it from a form built from its parameter schema, copy ready curl and Python, see its runs,
// data contract and lineage. Everything comes from the runtime's own API; text from products is
// only ever set as text, never parsed as HTML.
"use strict";
(() => {
  const view = document.getElementById("view");
  const NAME = /^[a-z0-9][a-z0-9-]{0,62}(@[1-9][0-9]{0,18})?$/;
  const ORIGIN = new URL(".", location.href).href.replace(/\/$/, "");
  const TABLE_ROWS = 500;
  const RECENT_RUNS = 10;
  let query = "";  // the search text, kept while the user opens products and comes back

  // ---- small helpers -----------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function notice(text) {
    const box = document.getElementById("notice");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // One API call with the page's token; {status, body}, body parsed as JSON when it is JSON.
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...window.nbmeshToken.headers(), ...(options.headers || {}) };
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (error) {
      return { status: 0, body: { error: `The runtime did not answer: ${error.message}.` } };
    }
    const text = await response.text();
    let body = text;
    if ((response.headers.get("content-type") || "").startsWith("application/json")) {
      try {
        body = JSON.parse(text);
      } catch {
        body = { error: "The runtime's answer is not valid JSON." };
      }
    }
    if (response.status === 401) notice("This runtime needs a token: enter yours at the top right (it stays in this tab).");
    return { status: response.status, body };
  }

  function errorText(answer) {
    const body = answer.body;
    if (body && typeof body === "object" && body.error) {
      const details = (body.details || []).map((d) => `${d.parameter || d.cell || d.path || ""} ${d.message}`.trim());
      return [body.error, ...details].join("\n");
    }
    return `HTTP ${answer.status}`;
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (const [size, unit] of units) {
      if (seconds >= size) {
        const n = Math.floor(seconds / size);
        return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
      }
    }
    return "just now";
  }

  function age(iso) {
    return el("time", { datetime: iso, title: iso, class: "age" }, ago(iso));
  }

  // Keep the "… ago" texts true while the page stays open.
  setInterval(() => document.querySelectorAll("time.age").forEach((t) => { t.textContent = ago(t.dateTime); }), 15000);

  // ---- results ------------------------------------------------------------------------------
  // A list of records, the shape a DataFrame result takes: shown as a table (a nested value as JSON text).
  function isTable(value) {
    return Array.isArray(value) && value.length > 0 && value.every((row) => row && typeof row === "object" && !Array.isArray(row));
  }

  function cellText(cell) {
    if (cell === null || cell === undefined) return "";
    return typeof cell === "object" ? JSON.stringify(cell) : String(cell);
  }

  function table(rows, caption) {
    const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
    const shown = rows.slice(0, TABLE_ROWS);
    return el("div", { class: "table-wrap" },
      el("table", { class: "result-table" },
        caption ? el("caption", {}, caption) : null,
        el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
        el("tbody", {}, shown.map((row) => el("tr", {}, columns.map((c) => {
          const cell = row[c];
          return el("td", { class: typeof cell === "number" ? "num" : null }, cellText(cell));
        }))))),
      rows.length > shown.length ? el("p", { class: "muted" }, `First ${shown.length} of ${rows.length} rows.`) : null);
  }

  function json(value) {
    return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
  }

  function result(value) {
    if (isTable(value)) return table(value, `${value.length} row${value.length === 1 ? "" : "s"}`);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      // An object holding tables (e.g. {"year": 2015, "rows": [...]}): its scalars, then each table.
      const tables = Object.entries(value).filter(([, v]) => isTable(v));
      if (tables.length) {
        const rest = Object.entries(value).filter(([, v]) => !isTable(v));
        return el("div", {},
          rest.length ? el("dl", { class: "fields" }, rest.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, cellText(v))])) : null,
          tables.map(([k, v]) => table(v, `${k}: ${v.length} row${v.length === 1 ? "" : "s"}`)));
      }
    }
    return json(value);
  }

  // ---- the form built from the parameter schema ---------------------------------------------
  const JSON_TYPES = new Set(["list", "dict", "any"]);

  function field(name, info) {
    const id = `param-${name}`;
    const type = info.type;
    let input;
    if (type === "bool") {
      input = el("input", { type: "checkbox", id, name });
      input.checked = info.default === true;
    } else if (JSON_TYPES.has(type)) {
      input = el("textarea", { id, name, rows: 2, spellcheck: "false", class: "json-input" });
      input.value = info.default === undefined ? "" : JSON.stringify(info.default);
    } else {
      const number = type === "int" || type === "float";
      input = el("input", { type: number ? "number" : "text", step: type === "float" ? "any" : number ? "1" : null, id, name, spellcheck: "false" });
      input.value = info.default === null || info.default === undefined ? "" : String(info.default);
    }
    // A nullable parameter can be sent empty (null) with its own box, so "" stays a real string.
    let empty = null;
    if (info.nullable) {
      empty = el("input", { type: "checkbox", id: `${id}-null`, class: "null-box" });
      empty.checked = info.default === null;
      input.disabled = empty.checked;
      empty.addEventListener("change", () => { input.disabled = empty.checked; });
    }
    const read = () => {
      if (empty && empty.checked) return { value: null };
      if (type === "bool") return { value: input.checked };
      const text = input.value.trim();
      if (type === "str") return { value: input.value };
      if (text === "") return { omit: true };  // the default applies
      if (type === "int" || type === "float") {
        const value = Number(text);
        if (!Number.isFinite(value)) return { error: `${name}: a number is needed.` };
        if (type === "int" && !Number.isInteger(value)) return { error: `${name}: a whole number is needed.` };
        return { value };
      }
      try {
        const value = JSON.parse(text);
        if (type === "list" && !Array.isArray(value)) return { error: `${name}: a JSON list like ["a", "b"] is needed.` };
        if (type === "dict" && (value === null || typeof value !== "object" || Array.isArray(value))) {
          return { error: `${name}: a JSON object like {"k": 1} is needed.` };
        }
        return { value };
      } catch {
        return { error: `${name}: not valid JSON.` };
      }
    };
    const row = el("div", { class: "field" },
      el("label", { for: id }, el("code", {}, name), " ", el("span", { class: "type" }, info.nullable ? `${type} or null` : type)),
      el("div", { class: "control" }, input, empty ? el("label", { class: "null-label", for: `${id}-null` }, empty, " null") : null),
      info.help ? el("p", { class: "help" }, info.help) : null);
    return { row, read, inputs: [input, empty].filter(Boolean) };
  }

  function parameterForm(product, onChange) {
    const fields = Object.entries(product.parameters).map(([name, info]) => [name, field(name, info)]);
    const values = () => {
      const params = {};
      const errors = [];
      for (const [name, f] of fields) {
        const read = f.read();
        // Only what differs from the default is sent (and shown in the snippets): the rest applies by itself.
        if (read.error) errors.push(read.error);
        else if (!read.omit && JSON.stringify(read.value) !== JSON.stringify(product.parameters[name].default)) params[name] = read.value;
      }
      return { params, errors };
    };
    const form = el("form", { class: "invoke-form", id: "invoke-form" },
      fields.length ? fields.map(([, f]) => f.row) : el("p", { class: "muted" }, "This product takes no parameters."),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "invoke" }, "Invoke")));
    form.addEventListener("input", onChange);
    form.addEventListener("change", onChange);
    return { form, values };
  }

  // ---- snippets -----------------------------------------------------------------------------
  function pyLiteral(value) {
    if (value === null) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (Array.isArray(value)) return `[${value.map(pyLiteral).join(", ")}]`;
    if (typeof value === "object") return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyLiteral(v)}`).join(", ")}}`;
    return JSON.stringify(value);  // numbers, and strings: JSON's escapes are Python's too
  }

  function shellQuote(text) {
    return `'${text.replace(/'/g, "'\\''")}'`;
  }

  function snippets(ref, params) {
    const auth = window.nbmeshToken.get() ? ` \\\n  -H "Authorization: Bearer $NBMESH_TOKEN"` : "";
    const path = `${ORIGIN}/api/products/${ref}`;
    const query = new URLSearchParams({ format: "csv" });
    for (const [k, v] of Object.entries(params)) query.append(k, typeof v === "string" ? v : JSON.stringify(v));
    const curl = [
      `curl -s -X POST ${shellQuote(`${path}/invoke`)} \\\n  -H 'Content-Type: application/json'${auth} \\\n  -d ${shellQuote(JSON.stringify(params))}`,
      "",
      "# the result alone, as CSV (tabular results)",
      `curl -s ${shellQuote(`${path}/result?${query}`)}${auth}`,
    ].join("\n");
    const args = [JSON.stringify(ref), ...Object.entries(params).map(([k, v]) => `${k}=${pyLiteral(v)}`)].join(", ");
    const python = [
      "from kernel_runtime import Client",
      "",
      `client = Client(${JSON.stringify(ORIGIN)})  # sends NBMESH_TOKEN if set`,
      `result = client.invoke(${args})`,
    ].join("\n");
    return { curl, python };
  }

  function copyable(id, title) {
    const pre = el("pre", { class: "snippet", id });
    const button = el("button", { type: "button", class: "copy" }, "Copy");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(pre.textContent);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return { pre, box: el("div", { class: "snippet-box" }, el("div", { class: "snippet-head" }, el("span", {}, title), button), pre) };
  }

  // ---- runs -----------------------------------------------------------------------------------
  function statusBadge(status) {
    return el("span", { class: `status status-${status}` }, status.replace("_", " "));
  }

  function runsSection(runs) {
    if (!runs.length) return el("p", { class: "muted", id: "freshness" }, "No runs yet.");
    const last = runs.find((run) => run.status === "succeeded");
    const freshness = last
      ? el("p", { id: "freshness" }, "Last successful run ", age(last.finished_at || last.created_at), ` (version ${last.version}).`)
      : el("p", { id: "freshness", class: "warn" }, `None of the last ${runs.length} runs succeeded.`);
    const trigger = (t) => (t.kind === "schedule" ? `schedule ${t.schedule}` : t.kind === "event" ? `event ${t.topic}` : t.kind);
    return el("div", {}, freshness, el("div", { class: "table-wrap" }, el("table", { class: "runs" },
      el("thead", {}, el("tr", {}, ["status", "when", "duration", "version", "trigger", "run"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, runs.map((run) => el("tr", {},
        el("td", {}, statusBadge(run.status)),
        el("td", {}, age(run.finished_at || run.created_at)),
        el("td", { class: "num" }, run.duration_ms === null ? "" : `${Math.round(run.duration_ms)} ms`),
        el("td", { class: "num" }, run.version),
        el("td", {}, trigger(run.trigger || {})),
        el("td", {}, el("a", { href: `api/runs/${encodeURIComponent(run.run_id)}`, class: "run-id" }, run.run_id.slice(0, 10)))))))));
  }

  // ---- pages ------------------------------------------------------------------------------------
  function haystack(product) {
    return [product.name, product.title, product.description, product.owner, ...Object.keys(product.parameters)].join(" ").toLowerCase();
  }

  function lineageBlock(graph, current) {
    // One product's page shows the products linked to it; the catalog, every product linked to another.
    const linked = new Set(graph.edges.flatMap((e) => [e.from, e.to]));
    const part = current
      ? window.nbmeshLineage.component(graph, current)
      : { nodes: graph.nodes.filter((n) => linked.has(n.name)), edges: graph.edges };
    if (!part.edges.length) {
      return el("p", { class: "muted" }, current
        ? "No other product triggers this one or is triggered by it."
        : "No product triggers another yet (a product subscribes to product.NAME.succeeded or .failed).");
    }
    return el("div", { class: "lineage", id: "lineage" }, window.nbmeshLineage.draw(part, current),
      el("p", { class: "muted legend" }, "An arrow goes from a product to each product its finished runs trigger (dashed: on failure)."));
  }

  async function showCatalog() {
    document.title = "nbmesh · data products";
    const [products, lineage] = await Promise.all([api("api/products"), api("api/lineage")]);
    if (products.status !== 200) {
      view.replaceChildren(el("p", { class: "error" }, errorText(products)));
      return;
    }
    notice("");
    const list = products.body.products;
    const search = el("input", {
      type: "search", id: "search", placeholder: "Search by name, title, description, owner or parameter",
      "aria-label": "Search products", autocomplete: "off",
    });
    search.value = query;
    const count = el("p", { class: "muted", id: "count" });
    const cards = list.map((product) => {
      const params = Object.keys(product.parameters);
      const card = el("li", { class: "card", "data-name": product.name },
        el("a", { href: `#/p/${encodeURIComponent(product.name)}` },
          el("h3", {}, product.title || product.name),
          el("code", { class: "name" }, product.name),
          product.description ? el("p", { class: "description" }, product.description) : null,
          el("p", { class: "meta" },
            product.owner ? el("span", { class: "owner" }, product.owner) : null,
            el("span", {}, `v${product.version}`),
            params.length ? el("span", {}, `${params.length} parameter${params.length === 1 ? "" : "s"}: ${params.join(", ")}`) : el("span", {}, "no parameters"))));
      return { card, text: haystack(product) };
    });
    const filter = () => {
      query = search.value;
      const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const { card, text } of cards) {
        card.hidden = !terms.every((term) => text.includes(term));
        if (!card.hidden) shown++;
      }
      count.textContent = !list.length
        ? "No product is published yet (or none you may read)."
        : shown === list.length ? `${list.length} product${list.length === 1 ? "" : "s"}` : `${shown} of ${list.length} products match`;
    };
    search.addEventListener("input", filter);
    view.replaceChildren(
      el("section", { class: "search" }, search, count),
      el("ul", { class: "cards", id: "products" }, cards.map((c) => c.card)),
      el("section", {}, el("h2", {}, "Lineage"), lineage.status === 200 ? lineageBlock(lineage.body, null) : el("p", { class: "error" }, errorText(lineage))));
    filter();
    search.focus();
  }

  async function showProduct(ref) {
    if (!NAME.test(ref)) {
      view.replaceChildren(el("p", { class: "error" }, `${JSON.stringify(ref.slice(0, 70))} is not a product name (name or name@version).`));
      return;
    }
    const base = `api/products/${ref}`;
    const [answer, runs, lineage] = await Promise.all([api(base), api(`${base}/runs?limit=${RECENT_RUNS}`), api("api/lineage")]);
    if (answer.status !== 200) {
      view.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← all products")), el("p", { class: "error" }, errorText(answer)));
      return;
    }
    notice("");
    const product = answer.body;
    const pinned = ref.includes("@");
    document.title = `${product.title || product.name} · nbmesh`;

    const runsBox = el("div", { id: "runs" }, runs.status === 200 ? runsSection(runs.body.runs) : el("p", { class: "error" }, errorText(runs)));
    const refreshRuns = async () => {
      const fresh = await api(`${base}/runs?limit=${RECENT_RUNS}`);
      if (fresh.status === 200) runsBox.replaceChildren(runsSection(fresh.body.runs));
    };

    const curl = copyable("snippet-curl", "curl");
    const python = copyable("snippet-python", "Python (kernel_runtime.Client)");
    const formErrors = el("p", { class: "error", id: "form-errors", hidden: true });
    const output = el("div", { id: "result", class: "result" });
    const { form, values } = parameterForm(product, () => update());
    function update() {
      const { params, errors } = values();
      formErrors.hidden = !errors.length;
      formErrors.textContent = errors.join("\n");
      const code = snippets(ref, params);
      curl.pre.textContent = code.curl;
      python.pre.textContent = code.python;
      return { params, errors };
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { params, errors } = update();
      if (errors.length) return;
      const button = form.querySelector("#invoke");
      button.disabled = true;
      output.replaceChildren(el("p", { class: "muted" }, "Running…"));
      const started = performance.now();
      const run = await api(`${base}/invoke`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(params) });
      button.disabled = false;
      const body = run.body;
      if (body && typeof body === "object" && body.run_id) {
        const head = el("p", { class: "run-head" }, statusBadge(body.status),
          ` run ${body.run_id.slice(0, 10)} · version ${body.version} · ${Math.round(body.duration_ms ?? performance.now() - started)} ms`,
          body.warm ? " · warm kernel" : "", body.cached ? " · cached" : "");
        if (body.status === "succeeded") {
          output.replaceChildren(head, result(body.result), el("details", {}, el("summary", {}, "Run record (JSON)"), json(body)));
        } else {
          const error = body.error || {};
          output.replaceChildren(head, el("p", { class: "error" }, `${error.ename}: ${error.evalue}`),
            el("details", {}, el("summary", {}, "Traceback"), el("pre", { class: "json" }, (error.traceback || []).join("\n"))));
        }
        refreshRuns();
      } else {
        output.replaceChildren(el("p", { class: "error" }, errorText(run)));
      }
    });

    const contractBox = el("pre", { class: "json", id: "contract-text", hidden: true });
    const showContract = el("button", { type: "button", id: "contract-show" }, "Show here");
    showContract.addEventListener("click", async () => {
      const contract = await api(`${base}/contract`, { headers: { Accept: "application/yaml, text/yaml, */*" } });
      contractBox.hidden = false;
      contractBox.textContent = contract.status === 200 ? String(contract.body) : errorText(contract);
    });

    const versions = product.versions.map((v) => {
      const label = `v${v}`;
      return v === product.version ? el("strong", {}, label) : el("a", { href: `#/p/${product.name}@${v}` }, label);
    });
    const paramRows = Object.entries(product.parameters).map(([name, info]) => el("tr", {},
      el("td", {}, el("code", {}, name)),
      el("td", {}, info.nullable ? `${info.type} or null` : info.type),
      el("td", {}, el("code", {}, JSON.stringify(info.default))),
      el("td", {}, info.help || "")));

    view.replaceChildren(
      el("p", {}, el("a", { href: "#/" }, "← all products")),
      el("section", { class: "product-head" },
        el("h1", { id: "product-title" }, product.title || product.name),
        el("p", { class: "meta" },
          el("code", { class: "name" }, product.name),
          product.owner ? el("span", { class: "owner", title: "owner" }, product.owner) : null,
          el("span", {}, "versions ", versions.flatMap((v, i) => (i ? [" ", v] : [v]))),
          pinned ? el("a", { href: `#/p/${product.name}` }, "newest") : null,
          el("span", {}, "published ", age(product.published_at))),
        product.description ? el("p", { class: "description" }, product.description) : null),
      el("div", { class: "columns" },
        el("section", { class: "panel" },
          el("h2", {}, "Try it"), form, formErrors),
        el("section", { class: "panel" },
          el("h2", {}, "Use it from code"), curl.box, python.box)),
      output,
      el("section", {}, el("h2", {}, "Parameters"), paramRows.length
        ? el("div", { class: "table-wrap" }, el("table", { class: "params" },
          el("thead", {}, el("tr", {}, ["name", "type", "default", "help"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, paramRows)))
        : el("p", { class: "muted" }, "None.")),
      el("section", {}, el("h2", {}, "Recent runs"), runsBox),
      el("section", {}, el("h2", {}, "Data contract"),
        el("p", {}, "The product's ",
          el("a", { href: `${base}/contract`, id: "contract-link" }, "data contract"),
          " (Open Data Contract Standard, YAML) ", showContract,
          " · its ", el("a", { href: `${base}/notebook` }, "published notebook"),
          " · its ", el("a", { href: `docs#/products/invoke_${product.name.replace(/-/g, "_")}` }, "API operation")),
        contractBox),
      el("section", {}, el("h2", {}, "Lineage"), lineage.status === 200 ? lineageBlock(lineage.body, product.name) : el("p", { class: "error" }, errorText(lineage))));
    update();
  }

  function route() {
    const match = location.hash.match(/^#\/p\/(.+)$/);
    let ref = null;
    if (match) {
      try {
        ref = decodeURIComponent(match[1]);
      } catch {
        ref = match[1];
      }
    }
    window.scrollTo(0, 0);
    return ref === null ? showCatalog() : showProduct(ref);
  }

  window.addEventListener("hashchange", route);
  window.nbmeshToken.onChange(() => route());
  route();
})();
