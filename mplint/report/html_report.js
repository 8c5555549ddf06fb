// mplint verify's HTML report: draws the embedded JSON (#mplint-data) as tables and inline SVG plots.
// No network, no libraries. Counts and shares are shown as the data holds them; only layout is computed here.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("mplint-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const DTYPE_COLORS = { float32: "var(--f32)", bfloat16: "var(--bf16)", float16: "var(--f16)" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    return fill(node, attrs, children);
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    return fill(node, attrs, children);
  }
  function fill(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const count = (n) => Number(n).toLocaleString("en-US");
  const percent = (share) => (share * 100).toFixed(2) + "%";
  const dtypeColor = (dtype) => DTYPE_COLORS[dtype] || "var(--other)";
  const place = (path, line) => path + ":" + line;
  const sourceLine = (path, line) => ((data.sources[path] || {})[String(line)] || "").trim();

  function legend(x, y, items) {
    const group = svg("g", { class: "legend", transform: `translate(${x},${y})` });
    let offset = 0;
    for (const [label, color, dashed] of items) {
      const mark = dashed
        ? svg("line", { x1: offset, y1: 6, x2: offset + 14, y2: 6, stroke: color, "stroke-width": 2, "stroke-dasharray": "4 2" })
        : svg("rect", { x: offset, y: 1, width: 12, height: 10, fill: color });
      group.append(mark, svg("text", { x: offset + 18, y: 10 }, label));
      offset += 26 + label.length * 6;
    }
    return group;
  }

  function runSection() {
    const run = data.run;
    const cuda = { real: "real CUDA", emulated: "emulated on the CPU (CUDA's autocast policy, no GPU)", none: "not used" }[run.cuda];
    const facts = [
      ["script", run.script + (run.argv.length ? " " + run.argv.join(" ") : "")],
      ["device", run.device],
      ["device name", run.device_name],
      ["CUDA", cuda],
      ["optimizer steps recorded", run.steps + (run.steps_requested ? " of --steps " + run.steps_requested : "")],
      ["processes", run.processes + (run.ranks > 1 ? ", " + run.ranks + " ranks" : "")],
      ["script outcome", run.script_status.outcome + (run.script_status.failure ? ": " + run.script_status.failure : "")],
      ["exit status", run.exit_status + (run.reason ? " (" + run.reason + ")" : "")],
      ["duration", run.duration_s.toFixed(2) + " s"],
      ["versions", `mplint ${run.mplint}, torch ${run.torch}, python ${run.python}`],
    ];
    const list = el("dl", { class: "facts", id: "run-facts" });
    for (const [name, value] of facts) list.append(el("dt", {}, name), el("dd", { "data-fact": name }, value));
    document.getElementById("run-body").append(list);
    const verdicts = {};
    for (const finding of data.findings) verdicts[finding.verdict || "static only"] = (verdicts[finding.verdict || "static only"] || 0) + 1;
    const summary = Object.entries(verdicts).map(([verdict, n]) => `${n} ${verdict}`).join(", ") || "no findings";
    document.getElementById("summary").textContent =
      `${run.steps} optimizer step${run.steps === 1 ? "" : "s"} recorded on ${run.device}; ${summary}; exit status ${run.exit_status}.`;
  }

  function snippet(finding) {
    const lines = data.sources[finding.path] || {};
    const last = Math.max(finding.line, finding.end_line);
    const block = el("pre", { class: "source" });
    for (const [number, text] of Object.entries(lines)) {
      const n = Number(number);
      if (n < finding.line - 3 || n > last + 3) continue;
      const hit = n >= finding.line && n <= last;
      block.append(el("span", { class: hit ? "line hit" : "line", "data-line": n }, el("span", { class: "number" }, n), text));
    }
    return block.childNodes.length ? block : null;
  }

  function findingsSection() {
    const body = document.getElementById("findings-body");
    if (!data.findings.length) {
      body.append(el("p", { class: "empty" }, "No findings."));
      return;
    }
    data.findings.forEach((finding, index) => {
      const verdict = finding.verdict || "static only";
      const evidence = el("ul", { class: "evidence" }, ...(finding.evidence || []).map((line) => el("li", {}, line)));
      body.append(
        el(
          "div",
          { class: "finding", id: "finding-" + (index + 1), "data-code": finding.code, "data-verdict": verdict },
          el(
            "div",
            { class: "head" },
            el("strong", {}, `${finding.code} [${finding.name}]`),
            el("span", { class: "verdict verdict-" + verdict.replace(" ", "-") }, verdict),
            el("a", { class: "mono location", href: "#finding-" + (index + 1) }, `${finding.path}:${finding.line}:${finding.column}`),
            finding.device ? el("span", { class: "note" }, "on " + finding.device) : null
          ),
          el("div", { class: "message" }, finding.message),
          evidence.childNodes.length ? evidence : null,
          snippet(finding)
        )
      );
    });
  }

  function timelineSection() {
    const body = document.getElementById("timeline-body");
    const { steps, rows } = data.timeline;
    if (!rows.length) {
      body.append(el("p", { class: "empty" }, "No dtype timeline was recorded (no op in your code made autograd history)."));
      return;
    }
    const labelWidth = 580, cell = Math.max(14, Math.min(42, Math.floor(520 / steps.length))), rowHeight = 18, top = 46;
    const width = labelWidth + cell * steps.length + 20, height = top + rowHeight * rows.length + 46;
    const plot = svg("svg", { class: "plot", id: "timeline-plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    plot.append(svg("title", {}, "Forward ops per user line and optimizer step, coloured by the dtype they returned"));
    const present = [...new Set(rows.map((row) => row.dtype))];
    plot.append(legend(labelWidth, 8, present.map((dtype) => [dtype, dtypeColor(dtype)])));
    plot.append(svg("text", { x: 4, y: top - 8, "font-weight": 600 }, "line of your code"));
    plot.append(svg("text", { x: 225, y: top - 8, "font-weight": 600 }, "op"));
    plot.append(svg("text", { x: 360, y: top - 8, "font-weight": 600 }, "source"));
    steps.forEach((step, column) => {
      if (steps.length <= 25 || column % Math.ceil(steps.length / 25) === 0) {
        plot.append(svg("text", { x: labelWidth + column * cell + cell / 2, y: height - 30, "text-anchor": "middle" }, step));
      }
    });
    plot.append(svg("text", { x: labelWidth + (cell * steps.length) / 2, y: height - 10, "text-anchor": "middle" },
      "optimizer step (cells: calls per step)"));
    rows.forEach((row, index) => {
      const y = top + index * rowHeight;
      const group = svg("g", { class: "timeline-row", "data-line": place(row.path, row.line), "data-op": row.op, "data-dtype": row.dtype });
      group.append(svg("text", { x: 4, y: y + 13, class: "mono" }, place(row.path, row.line)));
      group.append(svg("text", { x: 225, y: y + 13 }, row.op));
      const source = sourceLine(row.path, row.line);
      group.append(svg("text", { x: 360, y: y + 13, class: "mono" }, source.length > 27 ? source.slice(0, 26) + "…" : source));
      row.calls.forEach((calls, column) => {
        if (!calls) return;
        const x = labelWidth + column * cell;
        const rect = svg("rect", { x: x + 1, y: y + 1, width: cell - 2, height: rowHeight - 2, fill: dtypeColor(row.dtype), "data-step": steps[column], "data-calls": calls });
        rect.append(svg("title", {}, `${place(row.path, row.line)} ${row.op}: ${calls} call${calls === 1 ? "" : "s"} returning ${row.dtype} in step ${steps[column]}`));
        group.append(rect);
        if (cell >= 22) group.append(svg("text", { x: x + cell / 2, y: y + 13, "text-anchor": "middle", fill: "#fff", style: "fill:#fff" }, calls));
      });
      plot.append(group);
    });
    body.append(plot);
    const regions = data.regions;
    if (regions.length) {
      body.append(el("h3", {}, "Autocast regions entered"));
      body.append(table(["where", "opened for", "dtype", "enabled", "ran on"],
        regions.map((region) => [place(region.path, region.line), region.device_type, region.dtype, String(region.enabled), region.ran_on]), "regions-table"));
    }
  }

  function table(headers, rows, id, numeric) {
    const head = el("tr", {}, ...headers.map((header, index) => el("th", { class: (numeric || []).includes(index) ? "num" : null }, header)));
    const result = el("table", { id }, el("thead", {}, head));
    const tbody = el("tbody");
    for (const row of rows) {
      tbody.append(el("tr", {}, ...row.map((value, index) => el("td", { class: (numeric || []).includes(index) ? "num" : null }, value))));
    }
    result.append(tbody);
    return result;
  }

  function histogram(param, grid) {
    const width = 440, height = 210, left = 48, right = 12, top = 50, bottom = 40;
    const exponents = grid.exponents;
    const first = exponents[0], last = exponents[exponents.length - 1];
    const bars = exponents.length + 2; // a bar for zeros, a gap, then one per exponent
    const barWidth = (width - left - right) / bars;
    const shares = param.counts.map((n) => (param.values ? n / param.values : 0));
    const zeroShare = param.values ? param.zeros / param.values : 0;
    const highest = Math.max(zeroShare, ...shares, 1e-9);
    const yOf = (share) => top + (height - top - bottom) * (1 - share / highest);
    const xOf = (exponent) => left + (exponent - first + 2) * barWidth; // left edge of bin `exponent`
    const plot = svg("svg", { class: "plot histogram", width, height, viewBox: `0 0 ${width} ${height}`, "data-param": param.name, role: "img" });
    plot.append(svg("title", {}, `Gradient magnitudes of ${param.name} against float16's limits`));
    plot.append(svg("text", { x: left, y: 12, "font-weight": 600 }, `${param.name} (${param.dtype}, ${param.shape.join("×") || "scalar"})`));
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
    axis.append(svg("line", { x1: left, y1: top, x2: left, y2: height - bottom }));
    for (const share of [0, highest / 2, highest]) {
      axis.append(svg("text", { x: left - 4, y: yOf(share) + 4, "text-anchor": "end" }, (share * 100).toFixed(share && share < 0.1 ? 1 : 0) + "%"));
    }
    axis.append(svg("text", { x: left + barWidth / 2, y: height - bottom + 13, "text-anchor": "middle" }, "0"));
    for (let exponent = Math.ceil((first + 4) / 8) * 8; exponent <= last; exponent += 8) {
      axis.append(svg("text", { x: xOf(exponent), y: height - bottom + 13, "text-anchor": "middle" }, "2^" + exponent));
    }
    axis.append(svg("text", { x: (left + width - right) / 2, y: height - 8, "text-anchor": "middle" }, "|gradient| (log2 scale; share of values, %)"));
    plot.append(axis);
    plot.append(svg("rect", { class: "bar zero", x: left + 1, y: yOf(zeroShare), width: Math.max(barWidth - 1, 1), height: height - bottom - yOf(zeroShare), fill: "var(--other)", "data-share": zeroShare }));
    shares.forEach((share, index) => {
      if (!share) return;
      const exponent = exponents[index];
      const bar = svg("rect", { class: "bar", x: xOf(exponent), y: yOf(share), width: Math.max(barWidth - 0.5, 1), height: height - bottom - yOf(share), fill: "var(--f32)", "data-exponent": exponent, "data-count": param.counts[index] });
      bar.append(svg("title", {}, `2^${exponent - 1} <= |g| < 2^${exponent}: ${count(param.counts[index])} values (${percent(share)})`));
      plot.append(bar);
    });
    const limits = [
      ["fp16 min subnormal", grid.fp16_smallest_subnormal_exponent, "var(--f16)", "2^" + grid.fp16_smallest_subnormal_exponent],
      ["fp16 min normal", grid.fp16_smallest_normal_exponent, "var(--bf16)", "2^" + grid.fp16_smallest_normal_exponent],
      ["fp16 max", Math.log2(grid.fp16_max), "#7a3fb0", String(grid.fp16_max)],
    ];
    for (const [label, exponent, color, value] of limits) {
      const x = xOf(exponent + 1); // bin `e` ends at 2**e: the limit 2**k sits where bin k+1 starts
      const line = svg("line", { class: "limit", x1: x, y1: top - 4, x2: x, y2: height - bottom, stroke: color, "stroke-width": 1.5, "stroke-dasharray": "4 2" });
      line.append(svg("title", {}, `${label}: ${value}`));
      plot.append(line);
    }
    plot.append(legend(left, 18, [["zero", "var(--other)"], ["non-zero values", "var(--f32)"]]));
    plot.append(legend(left, 32, limits.map(([label, , color]) => [label, color, true])));
    return plot;
  }

  function gradientsSection() {
    const body = document.getElementById("gradients-body");
    const grid = data.gradients;
    if (data.underflow.length) {
      body.append(el("h3", {}, "Measured in unscaled fp16 backward passes"));
      body.append(table(["backward at", "passes", "fp16 values sampled", "subnormal or flushed where fp32 was not", "share"],
        data.underflow.map((row) => [place(row.path, row.line), count(row.passes), count(row.values), count(row.underflowed), percent(row.share)]),
        "underflow-table", [1, 2, 3, 4]));
    }
    if (!grid.params.length) {
      body.append(el("p", { class: "empty" }, "No gradients were recorded (no optimizer stepped with gradients)."));
      return;
    }
    body.append(el("h3", { id: "gradient-steps" }, `Gradients at optimizer steps ${grid.measured_steps_text}, per parameter`));
    body.append(el("p", { class: "note", id: "gradient-sampling" }, grid.sampling));
    body.append(table(
      ["parameter", "dtype", "shape", "steps measured", "values", "zero", "zero %", "< 2^-24 (fp16: 0)", "subnormal in fp16", "> fp16 max", "inf/nan"],
      grid.params.map((param) => [param.name, param.dtype, param.shape.join("×") || "scalar", count(param.steps), count(param.values),
        count(param.zeros), percent(param.zero_share), percent(param.flushed_share), percent(param.subnormal_share),
        count(param.overflow), count(param.non_finite)]),
      "gradient-table", [3, 4, 5, 6, 7, 8, 9, 10]));
    const plots = el("div", { class: "plots", id: "gradient-plots" });
    for (const param of grid.params.slice(0, 64)) plots.append(histogram(param, grid));
    body.append(plots);
    if (grid.params.length > 64) body.append(el("p", { class: "note" }, `Histograms of the first 64 of ${grid.params.length} parameters; all are in the table.`));
  }

  function scalerSection() {
    const body = document.getElementById("scaler-body");
    const steps = data.scaler;
    if (!steps.length) {
      body.append(el("p", { class: "empty" }, "No enabled GradScaler stepped in this run."));
      return;
    }
    const skipped = steps.filter((step) => step.skipped).length;
    body.append(el("p", { id: "scaler-summary" }, `${count(steps.length)} GradScaler steps, ${count(skipped)} skipped (inf/nan gradients); last scale ${steps[steps.length - 1].scale}.`));
    const width = 720, height = 240, left = 64, right = 16, top = 30, bottom = 42;
    const logs = steps.map((step) => Math.log2(step.scale));
    const low = Math.floor(Math.min(...logs)) - 1, high = Math.ceil(Math.max(...logs)) + 1;
    const xOf = (call) => left + (steps.length === 1 ? 0.5 : (call - 1) / (steps.length - 1)) * (width - left - right);
    const yOf = (log) => top + (height - top - bottom) * (1 - (log - low) / (high - low));
    const plot = svg("svg", { class: "plot", id: "scaler-plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    plot.append(svg("title", {}, "GradScaler scale per step, skipped steps marked"));
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
    axis.append(svg("line", { x1: left, y1: top, x2: left, y2: height - bottom }));
    const every = Math.max(1, Math.ceil((high - low) / 6));
    for (let log = low; log <= high; log += every) {
      axis.append(svg("line", { class: "grid", x1: left, y1: yOf(log), x2: width - right, y2: yOf(log) }));
      axis.append(svg("text", { x: left - 4, y: yOf(log) + 4, "text-anchor": "end" }, "2^" + log));
    }
    const tickEvery = Math.max(1, Math.ceil(steps.length / 12));
    for (let call = 1; call <= steps.length; call += tickEvery) {
      axis.append(svg("text", { x: xOf(call), y: height - bottom + 14, "text-anchor": "middle" }, call));
    }
    axis.append(svg("text", { x: (left + width - right) / 2, y: height - 8, "text-anchor": "middle" }, "GradScaler.step call"));
    axis.append(svg("text", { x: 14, y: (top + height - bottom) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(top + height - bottom) / 2})` }, "loss scale (log2)"));
    plot.append(axis);
    plot.append(svg("polyline", { points: steps.map((step, i) => `${xOf(step.call)},${yOf(logs[i])}`).join(" "), fill: "none", stroke: "var(--f32)", "stroke-width": 1.5 }));
    steps.forEach((step, i) => {
      const point = step.skipped
        ? svg("path", { class: "point skipped", d: `M${xOf(step.call) - 4},${yOf(logs[i]) - 4}l8,8m0,-8l-8,8`, stroke: "var(--f16)", "stroke-width": 2 })
        : svg("circle", { class: "point", cx: xOf(step.call), cy: yOf(logs[i]), r: 2.5, fill: "var(--f32)" });
      point.setAttribute("data-call", step.call);
      point.setAttribute("data-scale", step.scale);
      point.append(svg("title", {}, `step ${step.call}: scale ${step.scale}${step.skipped ? ", skipped (inf/nan gradients)" : ""}`));
      plot.append(point);
    });
    plot.append(legend(left, 12, [["scale", "var(--f32)"], ["skipped step", "var(--f16)"]]));
    body.append(plot);
  }

  function optimizersSection() {
    const body = document.getElementById("optimizers-body");
    if (!data.optimizers.length) {
      body.append(el("p", { class: "empty" }, "No optimizer was built or stepped in your code."));
      return;
    }
    const dtypes = (pairs) => pairs.map(([dtype, n]) => `${n} ${dtype}`).join(", ") || "—";
    body.append(table(["optimizer", "built at", "device", "steps", "parameters when built", "parameters at last step", "state after its last step"],
      data.optimizers.map((use) => [use.kind, place(use.path, use.line), use.device, count(use.steps), dtypes(use.params),
        dtypes(use.params_at_last_step), use.state.map(([key, dtype]) => `${key} ${dtype}`).join(", ") || "—"]),
      "optimizer-table", [3]));
  }

  runSection();
  findingsSection();
  timelineSection();
  gradientsSection();
  scalerSection();
  optimizersSection();
  document.body.setAttribute("data-rendered", "true");
})();
