// The notice of a site older than its schedule, and the commune search (communes.html).
// Every text from the data is inserted with textContent: nothing is parsed as HTML.
(function () {
  var stale = document.getElementById("stale");
  if (stale && Date.now() > Date.parse(stale.getAttribute("data-stale-after"))) {
    stale.hidden = false;
  }
  var form = document.getElementById("commune-search");
  var index = window.CPTS_GEO_INDEX;
  if (!form || !index) { return; }
  var input = document.getElementById("q");
  var list = document.getElementById("search-results");
  var status = document.getElementById("search-status");
  function norm(s) {
    return s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[’'\-\s]+/g, " ").replace(/\bsainte\b/g, "ste").replace(/\bsaint\b/g, "st")
      .trim();
  }
  var keys = index.communes.map(function (c) { return norm(c[1]); });
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text) { e.textContent = text; }
    return e;
  }
  function link(href, text) {
    var a = el("a", text);
    a.href = href;
    return a;
  }
  function show() {
    var raw = input.value.trim(), q = norm(raw), found = [];
    list.textContent = "";
    if (q.length < 2) {
      status.textContent = "Tapez au moins deux lettres du nom de la commune, ou son code INSEE.";
      return;
    }
    for (var i = 0; i < keys.length; i++) {
      var c = index.communes[i], k = keys[i], score = -1;
      if (/^\d/.test(raw)) { score = c[0].indexOf(raw.toUpperCase()) === 0 ? 0 : -1; }
      else if (k === q) { score = 1; }
      else if (k.indexOf(q) === 0) { score = 2; }
      else if (k.indexOf(" " + q) >= 0) { score = 3; }
      else if (k.indexOf(q) >= 0) { score = 4; }
      if (score >= 0) { found.push([score, -c[3], c[1], i]); }
    }
    found.sort(function (a, b) {
      return a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0);
    });
    status.textContent = found.length === 0 ? "Aucune commune ne correspond."
      : found.length > 20 ? found.length + " communes : les 20 plus peuplées d’abord."
      : found.length + (found.length > 1 ? " communes." : " commune.");
    found.slice(0, 20).forEach(function (f) {
      var c = index.communes[f[3]];
      var code = c[0].slice(0, c[0].slice(0, 2) === "97" ? 3 : 2);
      var dep = index.deps[code] || [code, null];
      var li = el("li");
      li.appendChild(el("strong", c[1]));
      li.appendChild(document.createTextNode(" (" + c[0] + ", "));
      li.appendChild(dep[1] ? link(dep[1], dep[0]) : document.createTextNode(dep[0]));
      li.appendChild(document.createTextNode(") : "));
      if (c[2].length === 0) {
        li.appendChild(el("span", "aucune CPTS dans les fichiers publiés"));
        li.lastChild.className = "none";
      }
      c[2].forEach(function (k, j) {
        var t = index.cpts[k];
        if (j) { li.appendChild(document.createTextNode(", ")); }
        li.appendChild(t[1] ? link(t[1], t[0]) : el("span", t[0]));
      });
      list.appendChild(li);
    });
  }
  input.addEventListener("input", show);
  var asked = new URLSearchParams(window.location.search).get("q");
  if (asked) { input.value = asked; }
  show();
})();
