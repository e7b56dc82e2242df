// The product graph of GET /api/lineage drawn as an inline SVG, laid out in layers (left to right):
// a product sits one layer right of the furthest product whose runs trigger it.
"use strict";
window.nbmeshLineage = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const BOX = { width: 184, height: 36, gapX: 64, gapY: 16, pad: 12 };

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The products linked to `name` by edges either way, with the edges between them.
  function component(graph, name) {
    const seen = new Set([name]);
    const queue = [name];
    while (queue.length) {
      const at = queue.shift();
      for (const edge of graph.edges) {
        for (const [a, b] of [[edge.from, edge.to], [edge.to, edge.from]]) {
          if (a === at && !seen.has(b)) {
            seen.add(b);
            queue.push(b);
          }
        }
      }
    }
    return {
      nodes: graph.nodes.filter((node) => seen.has(node.name)),
      edges: graph.edges.filter((edge) => seen.has(edge.from) && seen.has(edge.to)),
    };
  }

  function layers(graph) {
    const layer = new Map(graph.nodes.map((node) => [node.name, 0]));
    // Longest path from a source; bounded by the node count, so a cycle cannot loop forever.
    for (let round = 0; round < graph.nodes.length; round++) {
      let moved = false;
      for (const edge of graph.edges) {
        const next = Math.min(layer.get(edge.from) + 1, graph.nodes.length - 1);
        if (edge.from !== edge.to && next > layer.get(edge.to)) {
          layer.set(edge.to, next);
          moved = true;
        }
      }
      if (!moved) break;
    }
    const columns = [];
    for (const node of graph.nodes) (columns[layer.get(node.name)] ||= []).push(node);
    const row = new Map();
    columns.forEach((column) => {
      // Order a column by where the products feeding each node sit, to keep edges short and uncrossed.
      const weight = (node) => {
        const rows = graph.edges.filter((e) => e.to === node.name && row.has(e.from)).map((e) => row.get(e.from));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
      };
      column.sort((a, b) => weight(a) - weight(b) || a.name.localeCompare(b.name));
      column.forEach((node, index) => row.set(node.name, index));
    });
    return { columns: columns.filter(Boolean), layer, row };
  }

  function short(name) {
    return name.length > 22 ? `${name.slice(0, 21)}…` : name;
  }

  // An <svg> of `graph` ({nodes, edges}); `current` is highlighted; each published product links to its page.
  function draw(graph, current) {
    const { columns, layer, row } = layers(graph);
    const height = Math.max(...columns.map((c) => c.length)) * (BOX.height + BOX.gapY) - BOX.gapY + 2 * BOX.pad;
    const width = columns.length * (BOX.width + BOX.gapX) - BOX.gapX + 2 * BOX.pad;
    const root = svg("svg", {
      class: "lineage-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Lineage: ${graph.edges.map((e) => `${e.from} → ${e.to}`).join(", ") || "no links"}`,
    });
    const defs = root.appendChild(svg("defs"));
    const marker = defs.appendChild(svg("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    }));
    marker.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }));
    const at = (name) => ({
      x: BOX.pad + layer.get(name) * (BOX.width + BOX.gapX),
      y: BOX.pad + row.get(name) * (BOX.height + BOX.gapY),
    });
    for (const edge of graph.edges) {
      const a = at(edge.from);
      const b = at(edge.to);
      const x1 = a.x + BOX.width;
      const y1 = a.y + BOX.height / 2;
      const x2 = b.x;
      const y2 = b.y + BOX.height / 2;
      const bend = Math.max(30, Math.abs(x2 - x1) / 2);
      const path = root.appendChild(svg("path", {
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
        class: `edge ${edge.topic.endsWith(".failed") ? "on-failure" : "on-success"}`,
        "marker-end": "url(#arrow)",
        "data-from": edge.from,
        "data-to": edge.to,
      }));
      path.appendChild(svg("title", {}, `${edge.to} runs on ${edge.topic}`));
    }
    for (const node of graph.nodes) {
      const { x, y } = at(node.name);
      const classes = ["node", node.published ? "published" : "unpublished", node.name === current ? "current" : ""];
      const group = node.published ? svg("a", { href: `#/p/${encodeURIComponent(node.name)}` }) : svg("g");
      group.setAttribute("class", classes.join(" ").trim());
      group.setAttribute("data-name", node.name);
      group.appendChild(svg("title", {}, node.published ? node.name : `${node.name} (subscribed to, not published)`));
      group.appendChild(svg("rect", { x, y, width: BOX.width, height: BOX.height, rx: 7 }));
      group.appendChild(svg("text", { x: x + BOX.width / 2, y: y + BOX.height / 2 + 4.5, "text-anchor": "middle" }, short(node.name)));
      root.appendChild(group);
    }
    return root;
  }

  return { component, draw };
})();
