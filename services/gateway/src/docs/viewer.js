// The OpenAPI viewer: renders /api/docs/openapi.json as a page grouped by tag. Our own code,
// served by the gateway; it builds the page with DOM calls only (no innerHTML), so text from the
// document is never parsed as markup.

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

// `code` spans in descriptions become <code>; everything else stays text.
function withCode(node, text) {
  String(text || "").split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) node.append(el("code", {}, part.slice(1, -1)));
    else if (part) node.append(document.createTextNode(part));
  });
  return node;
}

function prose(text) {
  return withCode(el("p"), text);
}

function refName(ref) {
  return ref.replace("#/components/schemas/", "");
}

// A compact, readable rendering of a schema, following $refs to a limited depth.
function shape(schema, doc, depth = 0, seen = new Set()) {
  if (!schema) return "any";
  if (schema.$ref) {
    const name = refName(schema.$ref);
    const target = doc.components?.schemas?.[name];
    if (!target || seen.has(name) || depth > 4) return name;
    return shape(target, doc, depth, new Set([...seen, name]));
  }
  const pad = "  ".repeat(depth + 1);
  const types = [].concat(schema.type || []);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    if (schema[key]) {
      const parts = schema[key].map((s) => shape(s, doc, depth, seen));
      return parts.join(key === "allOf" ? " & " : " | ");
    }
  }
  if (types.includes("array")) return `[${shape(schema.items, doc, depth, seen)}]`;
  if (types.includes("object") || schema.properties) {
    const required = new Set(schema.required || []);
    const props = Object.entries(schema.properties || {});
    const extra = schema.additionalProperties;
    if (!props.length && extra && typeof extra === "object") return `{<key>: ${shape(extra, doc, depth, seen)}}`;
    if (!props.length) return "{}";
    const lines = props.map(([k, v]) => `${pad}${k}${required.has(k) ? "" : "?"}: ${shape(v, doc, depth + 1, seen)}`);
    return `{\n${lines.join(",\n")}\n${"  ".repeat(depth)}}`;
  }
  const nullable = types.includes("null") ? " | null" : "";
  const base = types.filter((t) => t !== "null").join(" | ") || "any";
  return (schema.format ? `${base} (${schema.format})` : base) + nullable;
}

function parameters(op, doc) {
  if (!op.parameters?.length) return null;
  const rows = op.parameters.map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "yes" : "no"),
      el("td", {}, shape(p.schema, doc)), el("td", {}, prose(p.description))));
  return el("div", {}, el("h3", {}, "Parameters"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "In", "Required", "Type", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
}

function bodyOf(content, doc) {
  if (!content) return null;
  return el("div", {}, ...Object.entries(content).map(([type, media]) =>
    el("div", {}, el("code", {}, type), el("pre", {}, shape(media.schema, doc)))));
}

function responses(op, doc) {
  const rows = Object.entries(op.responses || {}).map(([status, r]) =>
    el("tr", {}, el("td", {}, el("code", {}, status)), el("td", {}, prose(r.description), bodyOf(r.content, doc))));
  return el("div", {}, el("h3", {}, "Responses"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Status"), el("th", { scope: "col" }, "Body"))),
      el("tbody", {}, ...rows)));
}

function operation(path, method, op, doc) {
  const secured = (op.security || []).some((s) => Object.keys(s).length > 0) && !(op.security || []).some((s) => Object.keys(s).length === 0);
  const summary = el("summary", {}, el("span", { class: `method ${method}` }, method), el("span", { class: "path" }, path),
    secured ? el("span", { class: "lock" }, "bearer token") : null,
    withCode(el("span", { class: "opsum" }), op.summary || ""));
  const body = el("div", {}, op.description ? prose(op.description) : null, parameters(op, doc),
    op.requestBody ? el("div", {}, el("h3", {}, "Request body"), bodyOf(op.requestBody.content, doc)) : null,
    responses(op, doc));
  const node = el("details", { class: "op" }, summary, body);
  node.dataset.search = `${method} ${path} ${JSON.stringify(op)}`.toLowerCase();
  return node;
}

function render(doc) {
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  const summary = document.getElementById("summary");
  summary.replaceChildren(prose(doc.info.description));
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      for (const name of op.tags?.length ? op.tags : ["other"]) {
        if (!byTag.has(name)) byTag.set(name, { tag: { name }, ops: [] });
        byTag.get(name).ops.push(operation(path, method, op, doc));
      }
    }
  }
  const nav = document.getElementById("tags");
  const main = document.getElementById("operations");
  let count = 0;
  for (const [name, { tag, ops }] of byTag) {
    if (!ops.length) continue;
    count += ops.length;
    const id = `tag-${name.replace(/[^a-z0-9]+/gi, "-")}`;
    nav.append(el("a", { href: `#${id}` }, `${name} (${ops.length})`));
    main.append(el("section", { id }, el("h2", {}, name), tag.description ? prose(tag.description) : null, ...ops));
  }
  summary.append(el("p", {}, `${count} operations. `, el("a", { href: "/api/docs/openapi.json" }, "The document as JSON")));
  document.getElementById("filter").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const section of main.querySelectorAll("section")) {
      let shown = 0;
      for (const op of section.querySelectorAll("details.op")) {
        op.hidden = q !== "" && !op.dataset.search.includes(q);
        if (!op.hidden) shown += 1;
      }
      section.hidden = shown === 0;
    }
  });
}

async function main() {
  try {
    const r = await fetch("/api/docs/openapi.json");
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
  } catch (err) {
    document.getElementById("summary").textContent = `The document could not be loaded: ${err.message}`;
  }
}

main();
