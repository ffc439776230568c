// The shopvec gallery: plain JavaScript over the service's JSON API, no build step.
// Catalog text is untrusted: it only ever reaches the page through textContent and
// attributes, never innerHTML.
"use strict";

(function () {
  const ROW_K = 8;
  const params = new URLSearchParams(location.search);
  const PAGE_SIZE = clampInt(params.get("limit"), 1, 200, 48);

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const titles = new Map(); // item id -> title, from every answer seen so far
  const state = {
    grid: { offset: 0, total: 0, category: "", token: 0 },
    history: [],
    sessionMode: false,
    user: "",
  };
  const tokens = {}; // row name -> id of its latest request; older answers are dropped

  function clampInt(text, lo, hi, fallback) {
    const n = Number.parseInt(text ?? "", 10);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
  }

  // ----- talking to the service ------------------------------------------------
  async function api(path, options) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new Error(`Could not reach the service (${err.message}).`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string" ? body.error : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  const enc = encodeURIComponent;

  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  // ----- item cards --------------------------------------------------------------
  function titleOf(item) {
    const title = item.fields && item.fields.title;
    return title === null || title === undefined || title === "" ? String(item.item_id) : String(title);
  }

  function priceText(price) {
    if (typeof price === "number" && Number.isFinite(price)) return price.toFixed(2);
    if (typeof price === "string" && price.trim() !== "") return price;
    return "";
  }

  function remember(items) {
    for (const item of items) titles.set(String(item.item_id), titleOf(item));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function imageFor(item, title) {
    const fields = item.fields || {};
    // An `image` field that is present but empty means the item has none: don't ask for it.
    if ("image" in fields && (fields.image === null || fields.image === "")) {
      return placeholder(title);
    }
    const img = document.createElement("img");
    img.src = `/items/${enc(item.item_id)}/image`;
    img.alt = title;
    img.loading = "lazy";
    img.decoding = "async";
    img.addEventListener("error", () => img.replaceWith(placeholder(title)), { once: true });
    return img;
  }

  function placeholder(title) {
    const box = el("span", "noimg", title.slice(0, 1).toUpperCase() || "?");
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", `${title} (no image)`);
    return box;
  }

  function card(item, withMeta) {
    const id = String(item.item_id);
    const title = titleOf(item);
    const li = el("li", "card");
    li.dataset.testid = "card";
    li.dataset.itemId = id;
    if (state.history.includes(id)) li.classList.add("seen");

    const button = el("button", "card-main");
    button.type = "button";
    button.dataset.testid = "card-button";
    button.appendChild(imageFor(item, title));
    const name = el("span", "title", title);
    name.dataset.testid = "card-title";
    button.appendChild(name);
    const price = priceText(item.fields && item.fields.price);
    if (price) {
      const p = el("span", "price", price);
      p.dataset.testid = "card-price";
      button.appendChild(p);
    }
    button.addEventListener("click", () => onItemClick(id));
    li.appendChild(button);

    if (withMeta) {
      const parts = [item.source];
      if (typeof item.score === "number") parts.push(item.score.toFixed(2));
      const meta = el("span", "meta", parts.filter(Boolean).join(" · "));
      meta.dataset.testid = "card-meta";
      meta.title = "source · score";
      li.appendChild(meta);
    }
    if (item.because) {
      const seen = titles.get(String(item.because)) || String(item.because);
      const because = el("span", "because", `because you viewed ${seen}`);
      because.dataset.testid = "card-because";
      li.appendChild(because);
    }
    return li;
  }

  // Titles of `because` items not seen yet; a failed look-up falls back to the id.
  async function resolveTitles(items) {
    const missing = [...new Set(items.map((i) => i.because).filter((b) => b && !titles.has(String(b))))];
    await Promise.all(missing.map(async (id) => {
      try {
        const item = await api(`/items/${enc(id)}`);
        titles.set(String(id), titleOf(item));
      } catch (_) {
        titles.set(String(id), String(id));
      }
    }));
  }

  // ----- rows (similar, search results, user, session) -----------------------------
  // Runs `load` for the row `name` and renders its items; answers of superseded requests are dropped.
  async function fillRow(name, forKey, load) {
    const list = $(`${name}-row`);
    const status = $(`${name}-status`);
    const token = (tokens[name] || 0) + 1;
    tokens[name] = token;
    $(`${name}-panel`).hidden = false;
    list.dataset.state = "loading";
    list.dataset.for = forKey;
    list.setAttribute("aria-busy", "true");
    status.textContent = "Loading…";
    try {
      const answer = await load();
      const items = answer.items || [];
      remember(items);
      await resolveTitles(items);
      if (tokens[name] !== token) return;
      list.replaceChildren(...items.map((item) => card(item, true)));
      status.textContent = items.length ? "" : "Nothing to show.";
      list.dataset.state = "ready";
    } catch (err) {
      if (tokens[name] !== token) return;
      list.replaceChildren();
      status.textContent = "Could not load this row.";
      list.dataset.state = "error";
      showError(err.message);
    } finally {
      if (tokens[name] === token) list.removeAttribute("aria-busy");
    }
  }

  function hidePanel(name) {
    tokens[name] = (tokens[name] || 0) + 1;
    $(`${name}-panel`).hidden = true;
  }

  function showSimilar(id) {
    const known = titles.get(id);
    $("similar-title").textContent = `Similar to ${known || id}`;
    fillRow("similar", id, async () => {
      if (!known) {
        const item = await api(`/items/${enc(id)}`);
        titles.set(id, titleOf(item));
        $("similar-title").textContent = `Similar to ${titleOf(item)}`;
      }
      return api(`/items/${enc(id)}/similar?k=${ROW_K}`);
    });
    $("similar-panel").scrollIntoView({ block: "nearest" });
  }

  function onItemClick(id) {
    clearError();
    if (state.sessionMode) addToHistory(id);
    const hash = `#item=${enc(id)}`;
    if (location.hash === hash) showSimilar(id);
    else location.hash = hash; // back/forward walk the trail of items; see onHash
  }

  function onHash() {
    const match = /^#item=(.+)$/.exec(location.hash);
    if (!match) return hidePanel("similar");
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch (_) {
      return;
    }
    showSimilar(id);
  }

  function searchText(text) {
    $("results-title").textContent = `Results for “${text}”`;
    fillRow("results", `text:${text}`, () => api(`/search?text=${enc(text)}&k=${ROW_K}`));
  }

  function searchImage(file) {
    const title = $("results-title");
    title.replaceChildren(document.createTextNode("Results for your image "));
    const thumb = document.createElement("img");
    thumb.className = "query-thumb";
    thumb.alt = `the uploaded image ${file.name}`;
    thumb.src = URL.createObjectURL(file);
    thumb.addEventListener("load", () => URL.revokeObjectURL(thumb.src), { once: true });
    title.appendChild(thumb);
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("k", String(ROW_K));
    fillRow("results", `image:${file.name}`, () => api("/search", { method: "POST", body: form }));
  }

  function showUser(id) {
    state.user = id;
    if (!id) return hidePanel("user");
    $("user-title").textContent = `Recommended for ${id}`;
    fillRow("user", id, () => api(`/users/${enc(id)}/recommendations?k=${ROW_K}`));
  }

  // ----- session mode -------------------------------------------------------------
  function addToHistory(id) {
    if (state.history[state.history.length - 1] === id) return;
    state.history.push(id);
    renderSession();
  }

  function renderSession() {
    const chips = $("session-chips");
    chips.replaceChildren(...state.history.map((id, position) => {
      const li = el("li", "chip");
      li.dataset.testid = "session-chip";
      li.dataset.itemId = id;
      li.appendChild(el("span", "", titles.get(id) || id));
      const remove = el("button", "chip-x", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove ${titles.get(id) || id} from the history`);
      remove.addEventListener("click", () => {
        state.history.splice(position, 1);
        renderSession();
      });
      li.appendChild(remove);
      return li;
    }));
    $("session-hint").hidden = state.history.length > 0;
    $("session-clear").disabled = state.history.length === 0;
    document.querySelectorAll('[data-testid="card"]').forEach((node) => {
      node.classList.toggle("seen", state.history.includes(node.dataset.itemId));
    });
    const history = state.history.slice();
    if (!history.length) {
      tokens.session = (tokens.session || 0) + 1;
      const list = $("session-row");
      list.replaceChildren();
      list.dataset.state = "ready";
      list.dataset.for = "";
      $("session-status").textContent = "";
      return;
    }
    fillRow("session", history.join("\n"), () => api("/recommendations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ history, k: ROW_K }),
    }));
  }

  function setSessionMode(on) {
    state.sessionMode = on;
    $("session-panel").hidden = !on;
    document.body.classList.toggle("session-on", on);
    if (on) renderSession();
  }

  // ----- the catalog grid ---------------------------------------------------------
  async function loadGrid(reset) {
    const grid = state.grid;
    if (reset) {
      grid.offset = 0;
      grid.total = 0;
      $("catalog-grid").replaceChildren();
    }
    const token = ++grid.token;
    const list = $("catalog-grid");
    const more = $("more-button");
    list.dataset.state = "loading";
    more.disabled = true;
    let url = `/items?offset=${grid.offset}&limit=${PAGE_SIZE}`;
    if (grid.category) url += `&category=${enc(grid.category)}`;
    try {
      const answer = await api(url);
      if (token !== grid.token) return;
      const items = answer.items || [];
      remember(items);
      list.append(...items.map((item) => card(item, false)));
      grid.offset += items.length;
      grid.total = answer.total || 0;
      fillCategories(answer.categories || []);
      $("catalog-count").textContent = `${grid.offset} of ${grid.total} items`;
      more.hidden = grid.offset >= grid.total || items.length === 0;
      list.dataset.state = "ready";
    } catch (err) {
      if (token !== grid.token) return;
      list.dataset.state = "error";
      showError(err.message);
    } finally {
      if (token === grid.token) more.disabled = false;
    }
  }

  function fillCategories(categories) {
    const select = $("category-select");
    if (select.options.length > 1 || !categories.length) return;
    for (const name of categories) {
      const option = el("option", "", String(name));
      option.value = String(name);
      select.appendChild(option);
    }
  }

  async function loadUsers() {
    const select = $("user-select");
    try {
      const answer = await api("/users?limit=100");
      const users = answer.users || [];
      const first = el("option", "", users.length ? "Choose a shopper…" : "no trained model");
      first.value = "";
      const options = users.map((id) => {
        const option = el("option", "", String(id));
        option.value = String(id);
        return option;
      });
      select.replaceChildren(first, ...options);
      select.disabled = users.length === 0;
      if (answer.total > users.length) select.title = `the first ${users.length} of ${answer.total} shoppers`;
    } catch (err) {
      const none = el("option", "", "no shoppers");
      none.value = "";
      select.replaceChildren(none);
      showError(err.message);
    }
  }

  // ----- wiring --------------------------------------------------------------------
  function start() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("search-input").value.trim();
      clearError();
      if (text) searchText(text);
      else $("search-input").focus();
    });
    $("upload-input").addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      clearError();
      if (file) searchImage(file);
      event.target.value = ""; // choosing the same file again searches again
    });
    $("user-select").addEventListener("change", (event) => showUser(event.target.value));
    $("session-toggle").addEventListener("change", (event) => setSessionMode(event.target.checked));
    $("session-clear").addEventListener("click", () => {
      state.history = [];
      renderSession();
    });
    $("category-select").addEventListener("change", (event) => {
      state.grid.category = event.target.value;
      loadGrid(true);
    });
    $("more-button").addEventListener("click", () => loadGrid(false));
    $("error-close").addEventListener("click", clearError);
    $("similar-close").addEventListener("click", () => {
      if (location.hash) history.pushState(null, "", location.pathname + location.search);
      hidePanel("similar");
    });
    $("results-close").addEventListener("click", () => hidePanel("results"));
    $("user-close").addEventListener("click", () => {
      $("user-select").value = "";
      showUser("");
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") clearError();
    });
    window.addEventListener("hashchange", onHash);
    loadGrid(true);
    loadUsers();
    onHash();
  }

  start();
})();
