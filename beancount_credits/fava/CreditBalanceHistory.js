// @ts-check
// The Credit Balance History page: fills the template's regions from the
// extension's JSON endpoints. Sorting, filtering and paging of the all-users
// table happen here, without a reload; the exports ask the server for the same
// view. Every URL is relative to the page, so Fava's --prefix just works, and
// carries Fava's own filters (time, account, filter).

const FAVA_FILTERS = ["time", "account", "filter"];
const COLORS = ["#3273dc", "#e67e22", "#27ae60", "#8e44ad", "#c0392b"];

/** The endpoint URL with Fava's current filters and the given parameters. */
function endpoint(name, params = {}) {
  const page = new URL(window.location.href);
  const url = new URL(name, page.origin + page.pathname);
  for (const key of FAVA_FILTERS) {
    const value = page.searchParams.get(key);
    if (value) url.searchParams.set(key, value);
  }
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      url.searchParams.set(key, String(value));
    }
  }
  return url.toString();
}

async function getJSON(name, params) {
  const response = await fetch(endpoint(name, params));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${name}: HTTP ${response.status}`);
  return body;
}

/** @param {string} tag @param {Record<string,string>} [attrs] @param {(Node|string)[]} [children] */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** Fill a table from a table JSON ({columns, rows}); an empty table says so.
 * links: column name -> what a click on a cell of that column does. */
function fillTable(table, data, onRow, links) {
  const head = table.querySelector("thead");
  const body = table.querySelector("tbody");
  head.replaceChildren(
    el("tr", {}, data.columns.map((c) => el("th", c.kind === "number" ? { class: "num" } : {}, [c.name]))),
  );
  body.replaceChildren();
  if (!data.rows.length) {
    body.append(el("tr", {}, [el("td", { class: "cbh-empty", colspan: String(data.columns.length) }, ["none"])]));
    return;
  }
  for (const row of data.rows) body.append(rowElement(data.columns, row, onRow, links));
}

function rowElement(columns, row, onRow, links) {
  const tr = el("tr");
  row.forEach((cell, i) => {
    const attrs = {};
    if (columns[i].kind === "number") {
      attrs.class = cell !== null && Number(cell) < 0 ? "num neg" : "num";
    } else if (columns[i].name === "Description" || columns[i].name === "Reason") {
      attrs.class = "cbh-wrap";
      if (cell) attrs.title = cell; // shown whole on hover where the cell is cut
    }
    const link = links && cell ? links[columns[i].name] : undefined;
    if (link) {
      // The same trace as `bean-credits trace`: where a grant's credits went, what paid.
      const a = el("a", { href: "#", class: "cbh-trace-link", title: `Trace ${cell}` }, [cell]);
      a.addEventListener("click", (event) => { event.preventDefault(); event.stopPropagation(); link(cell); });
      tr.append(el("td", attrs, [a]));
      return;
    }
    tr.append(el("td", attrs, [cell ?? ""]));
  });
  if (onRow) tr.addEventListener("click", () => onRow(row));
  return tr;
}

function compare(kind, a, b) {
  if (a === null || a === "") return b === null || b === "" ? 0 : 1;
  if (b === null || b === "") return -1;
  if (kind === "number") return Number(a) - Number(b);
  return String(a).localeCompare(String(b));
}

/**
 * The daily balance charts: one per credit type, each on its own y scale (a
 * type counted in tens never lies flat under one counted in thousands), all
 * on the same dates; a step line and a circle per data point.
 */
function drawChart(box, legend, daily) {
  box.replaceChildren();
  legend.replaceChildren();
  const series = new Map();
  const column = (name) => daily.columns.findIndex((c) => c.name === name);
  const [iDate, iType, iBalance] = [column("Date"), column("Credit type"), column("Balance")];
  for (const row of daily.rows) {
    const [date, type, balance] = [row[iDate], row[iType], row[iBalance]];
    if (!series.has(type)) series.set(type, []);
    series.get(type).push([Date.parse(date), Number(balance), date, balance]);
  }
  if (!series.size) {
    box.append(el("p", { class: "cbh-empty" }, ["No balance in this period."]));
    return;
  }
  const all = [...series.values()].flat();
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let index = 0;
  for (const [type, points] of series) {
    const color = COLORS[index++ % COLORS.length];
    const figure = el("figure", { class: "cbh-chart-one", "data-type": type }, [
      el("figcaption", {}, [el("span", { class: "cbh-swatch", "data-color": String((index - 1) % COLORS.length) }), type]),
    ]);
    figure.append(typeChart(type, points, color, x0, x1, series.size > 1 ? 170 : 260, daily.title));
    box.append(figure);
    // Each chart's caption names its type; the legend lists them for a reader of the text.
    legend.append(el("span", { "data-color": String((index - 1) % COLORS.length) }, [type]));
  }
}

/** One credit type's chart: its own y scale from its own lowest to highest balance. */
function typeChart(type, points, color, x0, x1, H, title) {
  const W = 900, L = 60, R = 15, T = 12, B = 28;
  let y0 = Math.min(0, ...points.map((p) => p[1])), y1 = Math.max(0, ...points.map((p) => p[1]));
  if (y0 === y1) y1 = y0 + 1;
  const step = niceStep((y1 - y0) / 4);
  y0 = Math.floor(y0 / step) * step;
  y1 = Math.ceil(y1 / step) * step;
  const sx = (x) => L + (x1 === x0 ? (W - L - R) / 2 : ((x - x0) / (x1 - x0)) * (W - L - R));
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${type}`, class: "cbh-svg",
    "data-type": type, "data-y0": y0, "data-y1": y1,
  });
  for (let value = y0; value <= y1 + step / 2; value += step) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: sy(value), y2: sy(value), class: value === 0 ? "axis zero" : "axis" }));
    const label = svg("text", { x: L - 6, y: sy(value) + 4, "text-anchor": "end" });
    label.textContent = String(Number(value.toPrecision(12)));
    chart.append(label);
  }
  for (const [x, text] of monthTicks(x0, x1)) {
    chart.append(svg("line", { x1: sx(x), x2: sx(x), y1: H - B, y2: H - B + 4, class: "axis" }));
    const label = svg("text", { x: sx(x), y: H - 8, "text-anchor": "middle" });
    label.textContent = text;
    chart.append(label);
  }
  let d = "";
  points.forEach(([x, y], i) => {
    d += i === 0 ? `M${sx(x)},${sy(y)}` : `H${sx(x)}V${sy(y)}`;
  });
  chart.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "cbh-line" }));
  for (const [x, y, date, balance] of points) {
    const dot = svg("circle", {
      cx: sx(x), cy: sy(y), r: points.length > 120 ? 1.5 : 3, fill: color,
      class: "cbh-point", "data-date": date, "data-balance": balance, "data-type": type,
    });
    const tip = svg("title");
    tip.textContent = `${date}: ${balance} ${type}`;
    dot.append(tip);
    chart.append(dot);
  }
  return chart;
}

/** 1, 2 or 5 times a power of ten, at least ``raw``. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
}

/** Month starts between two timestamps, at most eight of them, as [time, label]. */
function monthTicks(x0, x1) {
  const ticks = [];
  const d = new Date(x0);
  let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  while (t <= x1) {
    const m = new Date(t);
    ticks.push([t, `${m.getUTCFullYear()}-${String(m.getUTCMonth() + 1).padStart(2, "0")}`]);
    t = Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1);
  }
  if (!ticks.length) {
    return [[x0, new Date(x0).toISOString().slice(0, 10)], [x1, new Date(x1).toISOString().slice(0, 10)]];
  }
  const every = Math.ceil(ticks.length / 8);
  return ticks.filter((_, i) => i % every === 0);
}

class Page {
  constructor(root) {
    this.root = root;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.data = null; // the users endpoint's answer
    this.sort = { column: -1, desc: false };
    this.page = 0;
    this.userId = null;
  }

  async start() {
    this.bindControls();
    try {
      const [users, alerts] = await Promise.all([getJSON("users"), getJSON("alerts")]);
      this.data = users;
      this.$("cbh-period").textContent = `Period: ${users.period}`;
      const notice = this.$("cbh-notice");
      notice.textContent = users.notice || "";
      notice.hidden = !users.notice;
      this.fillChoices();
      this.renderUsers();
      this.renderAlerts(alerts);
      const match = /^#user=(.+)$/.exec(window.location.hash);
      if (match) await this.openUser(decodeURIComponent(match[1]));
    } catch (error) {
      this.showError(error);
    }
  }

  showError(error) {
    const box = this.$("cbh-error");
    box.textContent = String(error.message || error);
    box.hidden = false;
  }

  bindControls() {
    for (const id of ["cbh-segment", "cbh-credit-type", "cbh-page-size"]) {
      this.$(id).addEventListener("change", () => { this.page = 0; this.renderUsers(); });
    }
    this.$("cbh-search").addEventListener("input", () => { this.page = 0; this.renderUsers(); });
    this.$("cbh-prev").addEventListener("click", () => { this.page -= 1; this.renderUsers(); });
    this.$("cbh-next").addEventListener("click", () => { this.page += 1; this.renderUsers(); });
    this.$("cbh-back").addEventListener("click", () => this.closeUser());
    this.$("cbh-trace-close").addEventListener("click", () => { this.$("cbh-trace").hidden = true; });
    for (const box of this.root.querySelectorAll(".cbh-exports")) {
      for (const link of box.querySelectorAll("a")) {
        link.addEventListener("click", (event) => {
          event.preventDefault();
          window.location.href = this.exportUrl(box.dataset.table, link.dataset.format);
        });
        link.addEventListener("mouseenter", () => { link.href = this.exportUrl(box.dataset.table, link.dataset.format); });
      }
    }
  }

  /** The export of what is on screen: the same filters and sort, or the open user. */
  exportUrl(table, format) {
    if (table === "statement") return endpoint("export", { table, format, user_id: this.userId });
    const columns = this.data ? this.data.table.columns : [];
    const sorted = this.sort.column >= 0 ? columns[this.sort.column].name : "";
    return endpoint("export", {
      table, format,
      segment: this.$("cbh-segment").value,
      credit_type: this.$("cbh-credit-type").value,
      q: this.$("cbh-search").value.trim(),
      sort: sorted,
      desc: sorted && this.sort.desc ? "1" : "",
    });
  }

  fillChoices() {
    for (const [id, values] of [["cbh-segment", this.data.segments], ["cbh-credit-type", this.data.credit_types]]) {
      const select = this.$(id);
      for (const value of values) select.append(el("option", { value }, [value]));
    }
  }

  /** The rows the controls select, in the chosen order. */
  visibleRows() {
    const { columns, rows } = this.data.table;
    const segment = this.$("cbh-segment").value;
    const type = this.$("cbh-credit-type").value;
    const needle = this.$("cbh-search").value.trim().toLowerCase();
    let out = rows.filter(
      (r) => (!segment || r[1] === segment) && (!type || r[2] === type) && (!needle || r[0].toLowerCase().includes(needle)),
    );
    if (this.sort.column >= 0) {
      const i = this.sort.column, kind = columns[i].kind, sign = this.sort.desc ? -1 : 1;
      const present = out.filter((r) => r[i] !== null && r[i] !== "");
      const missing = out.filter((r) => r[i] === null || r[i] === "");
      present.sort((a, b) => sign * compare(kind, a[i], b[i]));
      out = present.concat(missing);
    }
    return out;
  }

  renderUsers() {
    const { columns } = this.data.table;
    const table = this.$("cbh-users");
    const headers = columns.map((c, i) => {
      const attrs = { class: `sortable${c.kind === "number" ? " num" : ""}`, "data-column": c.name };
      if (this.sort.column === i) attrs["aria-sort"] = this.sort.desc ? "descending" : "ascending";
      const th = el("th", attrs, [c.name]);
      th.addEventListener("click", () => {
        // Numbers sort largest first on the first click; text A to Z.
        if (this.sort.column === i) this.sort.desc = !this.sort.desc;
        else this.sort = { column: i, desc: c.kind === "number" };
        this.page = 0;
        this.renderUsers();
      });
      return th;
    });
    table.querySelector("thead").replaceChildren(el("tr", {}, headers));
    const rows = this.visibleRows();
    const size = Number(this.$("cbh-page-size").value);
    const pages = Math.max(1, Math.ceil(rows.length / size));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    const shown = rows.slice(this.page * size, (this.page + 1) * size);
    const body = table.querySelector("tbody");
    const balance = columns.findIndex((c) => c.name === "Balance");
    const threshold = columns.findIndex((c) => c.name === "Low-balance threshold");
    body.replaceChildren(...shown.map((row) => {
      const tr = rowElement(columns, row, (r) => this.openUser(r[0]));
      if (threshold >= 0 && row[threshold] !== null && Number(row[balance]) < Number(row[threshold])) {
        tr.cells[balance].classList.add("low");
        tr.cells[balance].title = `below the low-balance threshold ${row[threshold]}`;
      }
      return tr;
    }));
    if (!shown.length) {
      body.append(el("tr", {}, [el("td", { class: "cbh-empty", colspan: String(columns.length) }, ["No user matches."])]));
    }
    const from = rows.length ? this.page * size + 1 : 0;
    this.$("cbh-page-info").textContent =
      `${from}–${this.page * size + shown.length} of ${rows.length} rows (page ${this.page + 1} of ${pages})`;
    this.$("cbh-prev").disabled = this.page === 0;
    this.$("cbh-next").disabled = this.page >= pages - 1;
  }

  renderAlerts(alerts) {
    const box = this.$("cbh-alerts");
    box.replaceChildren();
    const parts = [
      ["low_balance", "Below their low-balance threshold"],
      ["expiring", "Credits expiring soon"],
      ["overdraft", "Users in overdraft"],
      ["topups", "Failed top-ups"],
    ];
    for (const [key, heading] of parts) {
      const data = alerts[key];
      const count = el("span", { class: `cbh-count${data.rows.length ? "" : " zero"}` }, [String(data.rows.length)]);
      const table = el("table", { id: `cbh-alert-${key}` }, [el("thead"), el("tbody", { class: "cbh-rows" })]);
      fillTable(table, data, (row) => {
        const id = data.columns.findIndex((c) => c.name === "User ID");
        if (id >= 0) this.openUser(row[id]);
      });
      box.append(
        el("div", { class: "cbh-alert" }, [el("h3", { title: data.title }, [heading, count]), el("div", { class: "cbh-scroll" }, [table])]),
      );
    }
  }

  async openUser(userId) {
    try {
      const user = await getJSON("user", { user_id: userId });
      this.userId = user.user_id;
      this.$("cbh-error").hidden = true;
      this.$("cbh-all").hidden = true;
      this.$("cbh-user").hidden = false;
      this.$("cbh-user-title").textContent = `User ${user.user_id}`;
      const facts = [["Segment", user.segment], ["Email", user.email], ["Credit limit", user.credit_limit], ["Period", user.period]];
      this.$("cbh-user-facts").replaceChildren(
        ...facts.filter(([, v]) => v).map(([k, v]) => el("span", {}, [el("b", {}, [`${k}:`]), v])),
      );
      drawChart(this.$("cbh-chart"), this.$("cbh-legend"), user.daily);
      this.$("cbh-trace").hidden = true;
      fillTable(this.$("cbh-statement"), user.statement, undefined, { "Transaction ID": (id) => this.openTrace("txn", id) });
      const scroll = this.$("cbh-statement").parentElement;
      scroll.scrollTop = scroll.scrollHeight; // the latest lines first in view
      fillTable(this.$("cbh-grants"), user.grants, undefined, { Grant: (id) => this.openTrace("grant", id) });
      fillTable(this.$("cbh-members"), user.members);
      this.$("cbh-members-box").hidden = !user.members.rows.length;
      history.replaceState(history.state, "", `${window.location.pathname}${window.location.search}#user=${encodeURIComponent(user.user_id)}`);
      window.scrollTo(0, 0);
    } catch (error) {
      this.showError(error);
    }
  }

  async openTrace(mode, id) {
    try {
      const found = await getJSON("trace", { [mode]: id });
      const box = this.$("cbh-trace-tables");
      box.replaceChildren();
      for (const data of found.tables) {
        const table = el("table", {}, [el("thead"), el("tbody")]);
        fillTable(table, data);
        const notes = data.notes.map((note) => el("div", { class: "cbh-note" }, [note]));
        box.append(el("h4", {}, [data.title]), ...notes, el("div", { class: "cbh-scroll" }, [table]));
      }
      this.$("cbh-trace-title").textContent = `Trace of ${mode === "grant" ? "grant" : "transaction"} ${id}`;
      this.$("cbh-trace").hidden = false;
      this.$("cbh-trace").scrollIntoView();
    } catch (error) {
      this.showError(error);
    }
  }

  closeUser() {
    this.userId = null;
    this.$("cbh-user").hidden = true;
    this.$("cbh-all").hidden = false;
    history.replaceState(history.state, "", `${window.location.pathname}${window.location.search}`);
  }
}

const JOURNAL_KEY = "fava-journal-show";

/**
 * Preset Fava's journal toggles when the ledger asks for it (the extension's
 * journal_hide) and this browser has made no choice yet: the journal then
 * opens without the daily balance lines, one click from showing them. Fava
 * keeps the choice in localStorage and reads it when its journal store
 * starts; the storage event tells a store already started.
 */
async function presetJournal(api) {
  if (localStorage.getItem(JOURNAL_KEY) !== null) return;
  const settings = await api.get("settings");
  const show = settings && settings.journal_show;
  if (!Array.isArray(show) || localStorage.getItem(JOURNAL_KEY) !== null) return;
  const value = JSON.stringify(show);
  localStorage.setItem(JOURNAL_KEY, value);
  window.dispatchEvent(new StorageEvent("storage", { key: JOURNAL_KEY, newValue: value, storageArea: localStorage }));
}

export default {
  async init(context) {
    try {
      await presetJournal(context.api);
    } catch (error) {
      console.warn("Credit Balance History: journal preset skipped:", error);
    }
  },
  onExtensionPageLoad() {
    const root = document.getElementById("cbh");
    if (root) new Page(root).start();
  },
};
