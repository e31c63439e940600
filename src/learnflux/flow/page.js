/* learnflux: the learning-flow page. Hand-written, no library, no network.
 *
 * The data (a JSON script element, id trace-data, written by learnflux.flow.page) holds the
 * model's graph and, for every training step: o^k for every layer, δ^k = ∂Loss/∂(input of L^k),
 * every weight w before the step, its gradient δw and the update ŵ − w. Float tensors come as
 * base64 float32 / float64 arrays, exact ones as strings "p/q". This script draws, for the
 * chosen step and sample, each layer's panel: o^k and δ^(k+1) = ∂Loss/∂o^k as image grids, the
 * weights, gradients and updates as heat maps and histograms, with their statistics.
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("trace-data").textContent);
  var EXACT = DATA.dtype === "exact";
  var N = DATA.graph.length;
  var MAXW = 560; // widest image, in CSS pixels
  var state = { step: 0, sample: 0 };

  // ------------------------------------------------------------------ tensors
  function fracValue(s) {
    var i = s.indexOf("/");
    return i < 0 ? Number(s) : Number(s.slice(0, i)) / Number(s.slice(i + 1));
  }

  function decode(item) {
    if (item.exact) {
      return { shape: item.shape, data: Float64Array.from(item.exact, fracValue), exact: item.exact, kind: "exact" };
    }
    var text = atob(item.f32 || item.f64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var data = item.f32 ? new Float32Array(bytes.buffer) : new Float64Array(bytes.buffer);
    return { shape: item.shape, data: data, exact: null, kind: item.f32 ? "f32" : "f64" };
  }

  var TENSORS = DATA.tensors.map(decode);

  function size(shape) {
    var n = 1;
    for (var i = 0; i < shape.length; i++) n *= shape[i];
    return n;
  }

  function row(t, i) {
    // sample i of a batch tensor (batch, ...)
    var inner = t.shape.slice(1), n = size(inner);
    return {
      shape: inner,
      data: t.data.subarray(i * n, (i + 1) * n),
      exact: t.exact ? t.exact.slice(i * n, (i + 1) * n) : null,
      kind: t.kind
    };
  }

  function unravel(i, shape) {
    var out = [];
    for (var d = shape.length - 1; d >= 0; d--) {
      out.unshift(i % shape[d]);
      i = Math.floor(i / shape[d]);
    }
    return out;
  }

  // ------------------------------------------------------------------ numbers
  function f32str(v) {
    // the shortest decimal that reads back to the same float32 (what the JSON trace holds)
    if (v === 0 || !isFinite(v)) return String(v);
    for (var p = 1; p <= 9; p++) {
      var s = v.toPrecision(p);
      if (Math.fround(Number(s)) === v) return String(Number(s));
    }
    return String(v);
  }

  function fmt(t, i) {
    if (t.exact) return t.exact[i];
    return t.kind === "f32" ? f32str(t.data[i]) : String(t.data[i]);
  }

  function approx(x) {
    // a derived number (a mean, a norm): 6 significant digits
    if (x === 0 || !isFinite(x)) return String(x);
    return String(Number(x.toPrecision(6)));
  }

  function numText(v) {
    // a loss or a learning rate from the data: a number, or "p/q" when exact
    if (typeof v === "string") {
      return v.indexOf("/") < 0 ? v : v + " ≈ " + approx(fracValue(v));
    }
    return String(v);
  }

  function stats(t) {
    var d = t.data, n = d.length, lo = 0, hi = 0, big = 0, sum = 0, sq = 0, zeros = 0;
    for (var i = 0; i < n; i++) {
      var v = d[i];
      if (v < d[lo]) lo = i;
      if (v > d[hi]) hi = i;
      if (Math.abs(v) > Math.abs(d[big])) big = i;
      sum += v;
      sq += v * v;
      if (v === 0) zeros++;
    }
    return { min: lo, max: hi, big: big, mean: sum / n, norm: Math.sqrt(sq), zeros: zeros, n: n };
  }

  // ------------------------------------------------------------------ colours
  var SEQ = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  var DIV = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
    [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]];

  function ramp(stops, u) {
    u = Math.max(0, Math.min(1, u));
    var x = u * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    var a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }

  function scaleOf(t, st, diverging) {
    var lo = t.data[st.min], hi = t.data[st.max];
    if (diverging) {
      var m = Math.abs(t.data[st.big]) || 1;
      return { diverging: true, lo: -m, hi: m, color: function (v) { return ramp(DIV, (v / m + 1) / 2); } };
    }
    var span = hi - lo || 1;
    return { diverging: false, lo: lo, hi: hi, color: function (v) { return ramp(SEQ, (v - lo) / span); } };
  }

  // ------------------------------------------------------------------ elements
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  var tip = el("div", { cls: "tip" });

  function showTip(ev, text) {
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = ev.clientX + 12 + "px";
    tip.style.top = ev.clientY + 12 + "px";
  }

  function hideTip() {
    tip.style.display = "none";
  }

  // ------------------------------------------------------------------ layouts
  function layout(shape) {
    // tiles of th × tw cells; index(tile, r, c) → flat index into the tensor
    var s = shape.length > 4 ? [size(shape.slice(0, -1)), shape[shape.length - 1]] : shape;
    var L;
    if (s.length === 3) {
      L = { tiles: s[0], th: s[1], tw: s[2], index: function (t, r, c) { return (t * s[1] + r) * s[2] + c; } };
      L.cell = Math.max(2, Math.min(16, Math.floor((s[0] <= 4 ? 128 : 64) / Math.max(s[1], s[2]))));
    } else if (s.length === 4) {
      var per = s[2] * s[3];
      L = { tiles: s[0] * s[1], th: s[2], tw: s[3], index: function (t, r, c) { return t * per + r * s[3] + c; } };
      L.cols = s[1] > 1 ? s[1] : 0;
      L.cell = per > 1 ? Math.max(2, Math.min(10, Math.floor(30 / Math.max(s[2], s[3])))) : 6;
    } else if (s.length === 2) {
      L = { tiles: 1, th: s[0], tw: s[1], index: function (t, r, c) { return r * s[1] + c; } };
      L.cell = Math.max(1, Math.min(14, Math.floor(MAXW / s[1])));
    } else {
      var n = s.length ? s[0] : 1, w = n <= 64 ? n : 32;
      L = { tiles: 1, th: Math.ceil(n / w), tw: w, n: n, index: function (t, r, c) { var i = r * w + c; return i < n ? i : -1; } };
      L.cell = Math.max(3, Math.min(16, Math.floor(MAXW / w)));
    }
    L.gap = L.tiles > 1 ? Math.max(1, Math.round(L.cell / 2)) : 0;
    var tileW = L.tw * L.cell + L.gap;
    if (!L.cols) L.cols = Math.max(1, Math.min(L.tiles, Math.floor((MAXW + L.gap) / tileW)));
    while (L.cols * tileW - L.gap > MAXW && L.cell > 1) {
      L.cell--;
      tileW = L.tw * L.cell + L.gap;
    }
    L.rows = Math.ceil(L.tiles / L.cols);
    L.width = L.cols * (L.tw * L.cell + L.gap) - L.gap;
    L.height = L.rows * (L.th * L.cell + L.gap) - L.gap;
    return L;
  }

  function heatmap(t, scale, name, indexPrefix) {
    var L = layout(t.shape);
    var canvas = el("canvas", { cls: "map", width: L.width, height: L.height });
    var ctx = canvas.getContext("2d");
    var img = ctx.createImageData(L.width, L.height);
    var px = img.data;
    for (var i = 0; i < px.length; i += 4) { px[i] = px[i + 1] = px[i + 2] = 236; px[i + 3] = 255; }
    var stepW = L.tw * L.cell + L.gap, stepH = L.th * L.cell + L.gap;
    for (var tile = 0; tile < L.tiles; tile++) {
      var x0 = (tile % L.cols) * stepW, y0 = Math.floor(tile / L.cols) * stepH;
      for (var r = 0; r < L.th; r++) {
        for (var c = 0; c < L.tw; c++) {
          var idx = L.index(tile, r, c);
          if (idx < 0) continue;
          var rgb = scale.color(t.data[idx]);
          for (var yy = 0; yy < L.cell; yy++) {
            var base = ((y0 + r * L.cell + yy) * L.width + x0 + c * L.cell) * 4;
            for (var xx = 0; xx < L.cell; xx++) {
              var o = base + xx * 4;
              px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
            }
          }
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.addEventListener("mousemove", function (ev) {
      var box = canvas.getBoundingClientRect();
      var x = Math.floor((ev.clientX - box.left) * L.width / box.width);
      var y = Math.floor((ev.clientY - box.top) * L.height / box.height);
      var tile = Math.floor(y / stepH) * L.cols + Math.floor(x / stepW);
      var r = Math.floor((y % stepH) / L.cell), c = Math.floor((x % stepW) / L.cell);
      var idx = tile < L.tiles && r < L.th && c < L.tw ? L.index(tile, r, c) : -1;
      if (idx < 0) return hideTip();
      showTip(ev, name + "[" + indexPrefix.concat(unravel(idx, t.shape)).join(", ") + "] = " + fmt(t, idx));
    });
    canvas.addEventListener("mouseleave", hideTip);
    return canvas;
  }

  function scaleBar(scale) {
    var w = 14, h = 96;
    var c = el("canvas", { width: w, height: h });
    var ctx = c.getContext("2d");
    for (var y = 0; y < h; y++) {
      var v = scale.hi - (y / (h - 1)) * (scale.hi - scale.lo);
      var rgb = scale.color(v);
      ctx.fillStyle = "rgb(" + rgb.map(Math.round).join(",") + ")";
      ctx.fillRect(0, y, w, 1);
    }
    return el("div", { cls: "scale" }, [
      el("span", { text: approx(scale.hi) }), c,
      el("span", { text: approx(scale.lo) }),
      el("span", { text: scale.diverging ? "diverging, 0 = white" : "min → max" })
    ]);
  }

  function histogram(t, st) {
    var w = 240, h = 84, bins = 40;
    var lo = t.data[st.min], hi = t.data[st.max], span = hi - lo || 1;
    var counts = new Array(bins).fill(0);
    for (var i = 0; i < t.data.length; i++) {
      counts[Math.min(bins - 1, Math.floor(((t.data[i] - lo) / span) * bins))]++;
    }
    var top = Math.max.apply(null, counts) || 1;
    var c = el("canvas", { width: w, height: h + 14 });
    var ctx = c.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h + 14);
    var m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    for (var b = 0; b < bins; b++) {
      var mid = lo + (b + 0.5) * span / bins;
      var rgb = ramp(DIV, (mid / m + 1) / 2);
      ctx.fillStyle = "rgb(" + rgb.map(Math.round).join(",") + ")";
      var bh = Math.round((counts[b] / top) * (h - 4));
      ctx.fillRect(Math.floor(b * w / bins), h - bh, Math.ceil(w / bins) - 1, bh);
    }
    if (lo < 0 && hi > 0) {
      var x0 = Math.round(((0 - lo) / span) * w);
      ctx.fillStyle = "#1d2330";
      ctx.fillRect(x0, 0, 1, h);
    }
    ctx.fillStyle = "#5c6475";
    ctx.font = "10px sans-serif";
    ctx.fillText(approx(lo), 1, h + 11);
    var hiText = approx(hi);
    ctx.fillText(hiText, w - ctx.measureText(hiText).width - 1, h + 11);
    c.setAttribute("title", "histogram of the " + t.data.length + " values (" + bins + " bins)");
    return c;
  }

  function valuesText(t) {
    // every value, as learnflux's text output writes it: (a, b, c) or [(..), (..)]
    var box = el("div", { cls: "values" });
    function nested(shape, offset) {
      if (shape.length === 0) {
        box.appendChild(el("span", { cls: "v", text: fmt(t, offset) }));
        return;
      }
      var inner = size(shape.slice(1));
      box.appendChild(document.createTextNode(shape.length === 1 ? "(" : "["));
      for (var i = 0; i < shape[0]; i++) {
        if (i) box.appendChild(document.createTextNode(", "));
        nested(shape.slice(1), offset + i * inner);
      }
      box.appendChild(document.createTextNode(shape.length === 1 ? ")" : "]"));
    }
    nested(t.shape, 0);
    if (t.exact && t.exact.some(function (s) { return s.indexOf("/") >= 0; })) {
      var dec = Array.prototype.map.call(t.data, approx).join(", ");
      box.appendChild(el("span", { cls: "approx", text: "  ≈ (" + dec + ")" }));
    }
    return box;
  }

  function tensorBlock(name, what, t, opts) {
    // one tensor: title, statistics, image (and histogram, values when small)
    opts = opts || {};
    var st = stats(t);
    var block = el("div", { cls: "tensor", "data-name": name, "data-shape": t.shape.join(",") });
    block.appendChild(el("div", { cls: "title" }, [name + " ", el("span", { cls: "what", text: what })]));
    var parts = [
      ["shape", "(" + t.shape.join(", ") + (t.shape.length === 1 ? "," : "") + ")"],
      ["min", fmt(t, st.min)], ["max", fmt(t, st.max)],
      ["mean", (t.exact ? "≈ " : "") + approx(st.mean)], ["norm", approx(st.norm)],
      ["largest", "|v| at [" + unravel(st.big, t.shape).join(", ") + "] = "],
      ["at", fmt(t, st.big)]
    ];
    var stat = el("div", { cls: "stats" });
    parts.forEach(function (p, i) {
      var label = { shape: "shape ", min: " · min ", max: " · max ", mean: " · mean ", norm: " · ‖·‖ ", largest: " · largest ", at: "" }[p[0]];
      stat.appendChild(document.createTextNode(label));
      if (p[0] === "largest") stat.appendChild(document.createTextNode(p[1]));
      else stat.appendChild(el("b", { "data-stat": p[0], text: p[1] }));
    });
    if (st.zeros) stat.appendChild(document.createTextNode(" · " + st.zeros + " zero" + (st.zeros > 1 ? "s" : "")));
    block.appendChild(stat);
    if (t.data.length <= (t.exact ? 64 : 16)) block.appendChild(valuesText(t));
    if (t.data.length > 1) {
      var diverging = opts.diverging || t.data[st.min] < 0;
      var scale = scaleOf(t, st, diverging);
      var viz = el("div", { cls: "viz" }, [heatmap(t, scale, name, opts.prefix || []), scaleBar(scale)]);
      if (opts.histogram) viz.appendChild(histogram(t, st));
      block.appendChild(viz);
    }
    return block;
  }

  // ------------------------------------------------------------------ the graph
  function depths() {
    var d = [];
    DATA.graph.forEach(function (node, i) {
      var m = -1;
      node.inputs.forEach(function (j) { if (j > 0) m = Math.max(m, d[j - 1]); });
      d[i] = m + 1;
    });
    return d;
  }

  function deltaNorms(step, pos) {
    // ‖∂Loss/∂o^k‖ for the sample: δ^(k+1) in the data's numbering
    return DATA.graph.map(function (node, i) {
      var tid = step.d[i + 1];
      return tid == null ? 0 : stats(row(TENSORS[tid], pos)).norm;
    });
  }

  function drawGraph(box, step, pos) {
    var d = depths(), rowsAt = {}, W = 270, boxH = 26, gapY = 14;
    d.forEach(function (dep, i) { (rowsAt[dep] = rowsAt[dep] || []).push(i); });
    var nDepth = Math.max.apply(null, d) + 1, H = nDepth * (boxH + gapY) + 4;
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    var pos2 = [];
    Object.keys(rowsAt).forEach(function (dep) {
      var ids = rowsAt[dep], w = (W - 50 - 6 * (ids.length - 1)) / ids.length;
      ids.forEach(function (i, j) { pos2[i] = { x: 4 + j * (w + 6), y: 2 + dep * (boxH + gapY), w: w }; });
    });
    var norms = deltaNorms(step, pos), top = Math.max.apply(null, norms.concat([1e-300]));
    DATA.graph.forEach(function (node, i) {
      node.inputs.forEach(function (j) {
        if (j <= 0) return;
        var a = pos2[j - 1], b = pos2[i];
        var x1 = a.x + a.w / 2, y1 = a.y + boxH, x2 = b.x + b.w / 2, y2 = b.y;
        var path = document.createElementNS(svgNS, "path");
        var bend = d[i] - d[j - 1] > 1 ? Math.max(a.x + a.w, b.x + b.w) + 22 : null;
        path.setAttribute("d", bend == null
          ? "M" + x1 + "," + y1 + " L" + x2 + "," + y2
          : "M" + (a.x + a.w) + "," + (a.y + boxH / 2) + " C" + bend + "," + (a.y + boxH / 2) + " " + bend + "," + (b.y + boxH / 2) + " " + (b.x + b.w) + "," + (b.y + boxH / 2));
        path.setAttribute("class", "edge");
        svg.appendChild(path);
      });
    });
    DATA.graph.forEach(function (node, i) {
      var p = pos2[i], g = document.createElementNS(svgNS, "g");
      g.setAttribute("class", "node");
      g.setAttribute("data-k", node.k);
      var r = document.createElementNS(svgNS, "rect");
      r.setAttribute("x", p.x); r.setAttribute("y", p.y); r.setAttribute("width", p.w); r.setAttribute("height", boxH);
      // three decades of ‖δ‖ below the largest one, on a log scale
      var u = norms[i] > 0 ? Math.max(0.06, 1 + Math.log10(norms[i] / top) / 3) : 0;
      var rgb = ramp(DIV, 0.5 + 0.5 * u);
      r.style.fill = "rgb(" + rgb.map(Math.round).join(",") + ")";
      var label = "L" + node.k + " " + node.layer;
      var text = document.createElementNS(svgNS, "text");
      text.setAttribute("x", p.x + 5); text.setAttribute("y", p.y + 17);
      text.textContent = label.length > p.w / 6 ? label.slice(0, Math.max(4, Math.floor(p.w / 6) - 1)) + "…" : label;
      if (u > 0.7) text.style.fill = "#fff";
      var title = document.createElementNS(svgNS, "title");
      title.textContent = label + "\n‖∂Loss/∂o" + node.k + "‖ = " + approx(norms[i]);
      g.appendChild(r); g.appendChild(text); g.appendChild(title);
      g.addEventListener("click", function () {
        var target = document.getElementById("L" + node.k);
        if (target) target.scrollIntoView({ behavior: "smooth", block: "start" });
      });
      svg.appendChild(g);
    });
    box.textContent = "";
    box.appendChild(svg);
    box.appendChild(el("div", { cls: "legend-note", text: "colour: ‖∂Loss/∂o^k‖, the learning flow arriving at each layer's output (darker red: more; white: none). Click a layer to go to it." }));
  }

  function lossChart() {
    var w = 260, h = 90, vals = DATA.steps.map(function (s) { return typeof s.loss === "string" ? fracValue(s.loss) : s.loss; });
    var c = el("canvas", { width: w, height: h, id: "loss-chart" });
    var ctx = c.getContext("2d");
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals), span = hi - lo || 1;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#3559c7"; ctx.lineWidth = 1.5; ctx.beginPath();
    vals.forEach(function (v, i) {
      var x = vals.length > 1 ? 8 + i * (w - 16) / (vals.length - 1) : w / 2, y = h - 12 - ((v - lo) / span) * (h - 24);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
    vals.forEach(function (v, i) {
      var x = vals.length > 1 ? 8 + i * (w - 16) / (vals.length - 1) : w / 2, y = h - 12 - ((v - lo) / span) * (h - 24);
      ctx.fillStyle = i === state.step ? "#b2182b" : "#3559c7";
      ctx.beginPath(); ctx.arc(x, y, i === state.step ? 4 : 2.5, 0, 7); ctx.fill();
    });
    ctx.fillStyle = "#5c6475"; ctx.font = "10px sans-serif";
    ctx.fillText("batch loss per step: " + approx(hi) + " … " + approx(lo), 4, 10);
    return c;
  }

  // ------------------------------------------------------------------ panels
  function sampleName(pos) {
    var s = DATA.samples[pos];
    var target = Array.isArray(s.target) ? "(" + s.target.join(", ") + ")" : String(s.target);
    return "sample " + (pos + 1) + (s.index !== pos ? " (#" + s.index + ")" : "") + ", target " + target;
  }

  function consumers(k) {
    return DATA.graph.filter(function (n) { return n.inputs.indexOf(k) >= 0; }).map(function (n) { return "L" + n.k; });
  }

  function timeOrder(a, b) {
    // h_l0, dh_l0, c_l0, dc_l0 of each stacked layer and direction, in that order
    function key(n) {
      var d = n[0] === "d" ? 1 : 0, base = d ? n.slice(1) : n;
      return base.slice(base.indexOf("_")) + (base[0] === "h" ? "0" : "1") + d;
    }
    return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  }

  function layerPanel(node, step, j) {
    var k = node.k, shape = DATA.out_shapes[k - 1];
    var reads = node.inputs.map(function (i) { return i > 0 ? "o" + i : (i === 0 ? "x" : "x" + (1 - i)); });
    var panel = el("section", { cls: "panel layer-panel", id: "L" + k, "data-k": k }, [
      el("header", {}, [
        el("h2", { text: "L" + k + " = " + node.layer }),
        el("span", { cls: "reads", text: "← " + reads.join(", ") }),
        el("span", { cls: "shape", text: "o" + k + ": (" + shape.join(", ") + ") per sample" })
      ])
    ]);
    var who = "sample " + (step.samples[j] + 1);
    panel.appendChild(tensorBlock("o" + k, "forward: the output of L" + k + " (" + who + ")", row(TENSORS[step.o[k - 1]], j), { prefix: [] }));
    var dIn = step.d[k];
    if (dIn != null) {
      var from = k === N ? "the loss" : consumers(k).join(" + ");
      panel.appendChild(tensorBlock("δ" + (k + 1), "= ∂Loss/∂o" + k + ": the learning flow arriving from " + from + " (" + who + ")",
        row(TENSORS[dIn], j), { diverging: true }));
    }
    if (k === 1 && node["class"] !== "Input" && step.d[0] != null) {
      panel.appendChild(tensorBlock("δ1", "= ∂Loss/∂x: the learning flow that reaches the data", row(TENSORS[step.d[0]], j), { diverging: true }));
    }
    var time = (step.time || {})[String(k)] || {};
    Object.keys(time).sort(timeOrder).forEach(function (name) {
      var delta = name[0] === "d", base = delta ? name.slice(1) : name;
      var q = base.split("_")[0] + "_t", where = base.slice(base.indexOf("_") + 1);
      var rows = "one row per time step t = 1 … T (" + who + ", layer " + where + ")";
      var what = delta
        ? "= ∂Loss/∂" + q + ": the learning flow through time, " + rows + "; backpropagation through time computes it " + (where.indexOf("reverse") >= 0 ? "from the first row down" : "from the last row up")
        : "the " + (q[0] === "c" ? "cell state " : "state ") + q + ", " + rows;
      panel.appendChild(tensorBlock((delta ? "δ" + base : name) + "[t]", what, row(TENSORS[time[name]], j), { diverging: delta, prefix: [] }));
    });
    node.weights.forEach(function (w) {
      if (step.w[w] != null) panel.appendChild(tensorBlock(w, "the weights before this step (shared by the batch)", TENSORS[step.w[w]], { histogram: true }));
      if (step.g[w] != null) panel.appendChild(tensorBlock("δ" + w, "= ∂Loss/∂" + w + ", summed over the batch", TENSORS[step.g[w]], { diverging: true, histogram: true }));
      if (step.u[w] != null) {
        var hat = w[0] === "b" ? "b̂" + w.slice(1) : "ŵ" + w.slice(1);
        panel.appendChild(tensorBlock(hat + " − " + w, "the update the optimizer made (" + DATA.optimizer + ")", TENSORS[step.u[w]], { diverging: true, histogram: true }));
      }
    });
    panel.setAttribute("data-rendered", "1");
    return panel;
  }

  function lossPanel(step, j) {
    var panel = el("section", { cls: "panel layer-panel loss-panel", id: "loss", "data-k": "loss" }, [
      el("header", {}, [el("h2", { text: "Loss = " + DATA.loss_function })])
    ]);
    panel.appendChild(el("div", { cls: "loss-now" }, [
      "batch loss at step " + step.step + ": ", el("b", { "data-stat": "loss", text: numText(step.loss) })
    ]));
    var before = DATA.initial.losses, after = DATA.final.losses;
    panel.appendChild(el("div", { cls: "note" }, [
      "each sample's loss in the inference phase, before training: ",
      el("span", { "data-stat": "initial-losses", text: before.map(numText).join("; ") }),
      " · after the " + DATA.steps.length + " steps: ",
      el("span", { "data-stat": "final-losses", text: after.map(numText).join("; ") })
    ]));
    var d = step.d[N];
    if (d != null) {
      panel.appendChild(tensorBlock("δ" + (N + 1), "= ∂Loss/∂o" + N + ": where the learning flow starts (sample " + (step.samples[j] + 1) + ")", row(TENSORS[d], j), { diverging: true }));
    }
    panel.setAttribute("data-rendered", "1");
    return panel;
  }

  // ------------------------------------------------------------------ the page
  var main, graphBox, stepLabel, samplesBox, lossBox;

  function render() {
    var step = DATA.steps[state.step];
    var j = step.samples.indexOf(state.sample);
    if (j < 0) { j = 0; state.sample = step.samples[0]; }
    stepLabel.textContent = "step " + step.step + " of " + DATA.steps.length + " · epoch " + step.epoch +
      " · batch loss " + numText(step.loss);
    samplesBox.textContent = "";
    step.samples.forEach(function (pos) {
      var b = el("button", { cls: pos === state.sample ? "on" : "", "data-pos": pos, text: sampleName(pos) });
      b.addEventListener("click", function () { state.sample = pos; render(); });
      samplesBox.appendChild(b);
    });
    drawGraph(graphBox, step, j);
    lossBox.textContent = "";
    lossBox.appendChild(lossChart());
    main.textContent = "";
    main.appendChild(el("p", { cls: "note" }, [
      "Each panel is one layer L^k: its output o^k (the information flow) for the chosen sample, the learning flow " +
      "δ^(k+1) = ∂Loss/∂o^k that arrives at that output in the backward pass, then its weights w, their gradient δw " +
      "and the update ŵ − w. Move the mouse over an image to read a value."
    ]));
    DATA.graph.forEach(function (node) { main.appendChild(layerPanel(node, step, j)); });
    main.appendChild(lossPanel(step, j));
    document.body.setAttribute("data-panels", String(main.querySelectorAll(".layer-panel[data-rendered='1']").length));
    document.body.setAttribute("data-state", state.step + ":" + state.sample);
  }

  function build() {
    var app = document.getElementById("app");
    app.textContent = "";
    var exactNote = EXACT ? "exact arithmetic: every number is a fraction, shown exactly" : DATA.dtype;
    var slider = el("input", { type: "range", min: 1, max: DATA.steps.length, value: 1, step: 1, id: "step" });
    slider.addEventListener("input", function () { state.step = Number(slider.value) - 1; render(); });
    stepLabel = el("div", { cls: "step-label", id: "step-label" });
    samplesBox = el("div", { cls: "samples", id: "samples" });
    graphBox = el("div", { id: "graph" });
    lossBox = el("div", { id: "loss-box" });
    var meta = [DATA.source, DATA.data, exactNote, "optimizer " + DATA.optimizer +
      (DATA.lr_text ? ", α = " + DATA.lr_text : "") + ", batch size " + DATA.batch_size].filter(Boolean);
    var aside = el("aside", {}, [
      el("h1", { text: DATA.title }),
      el("div", { cls: "meta" }, meta.map(function (m) { return el("div", { text: m }); })),
      el("div", { cls: "controls" }, [el("label", { "for": "step", text: "training step" }), slider, stepLabel,
        el("label", { text: "sample" }), samplesBox]),
      el("h3", { text: "the model" }), graphBox,
      el("h3", { text: "the loss" }), lossBox
    ]);
    main = el("main", { id: "panels" });
    app.appendChild(aside);
    app.appendChild(main);
    document.body.appendChild(tip);
    state.sample = DATA.steps[0].samples[0];
    render();
  }

  try {
    build();
    document.body.setAttribute("data-ready", "1");
  } catch (err) {
    document.body.setAttribute("data-ready", "error");
    var app = document.getElementById("app");
    app.appendChild(el("p", { cls: "error", text: "The page could not draw the trace: " + err }));
    console.error(err);
  }
})();
