/* The DSL's desk, live (issue 5 §4): a grave concern recorded while the desk is open is put
   at the top of it at once, marked "Just arrived", and announced to screen readers. The
   server decides what this person may see (esafety.safeguarding.live); each event is what
   a row shows, never what was seen or said. Without script the desk still works: reload. */
(function () {
  "use strict";
  var desk = document.getElementById("desk");
  if (!desk || !desk.getAttribute("data-live") || !window.EventSource) { return; }
  var status = document.getElementById("desk-live");

  function shownIds() {
    var ids = [];
    var links = desk.querySelectorAll("tbody a[href^='/safeguarding/concerns/']");
    for (var i = 0; i < links.length; i += 1) {
      var id = parseInt(links[i].getAttribute("href").split("/").pop(), 10);
      if (!isNaN(id)) { ids.push(id); }
    }
    return ids;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function tbody() {
    var found = desk.querySelector("tbody");
    if (found) { return found; }
    // An empty desk has no table yet: make one like the page's.
    var wrap = el("div", "table-wrap");
    var table = el("table");
    var caption = el("caption", "visually-hidden", "Concerns on your desk");
    var head = el("thead");
    var row = el("tr");
    ["Concern", "Recorded", "Raised by", "Steps"].forEach(function (name) {
      var th = el("th", "", name);
      th.setAttribute("scope", "col");
      row.appendChild(th);
    });
    head.appendChild(row);
    table.appendChild(caption);
    table.appendChild(head);
    var body = el("tbody");
    table.appendChild(body);
    wrap.appendChild(table);
    var empty = document.getElementById("desk-empty");
    if (empty) { empty.replaceWith(wrap); } else { desk.appendChild(wrap); }
    return body;
  }

  function add(concern) {
    if (shownIds().indexOf(concern.id) !== -1) { return; }
    var row = el("tr", "row--live");
    row.setAttribute("data-concern", String(concern.id));
    var first = el("td");
    var link = el("a", "", concern.title);
    link.setAttribute("href", concern.url);
    first.appendChild(link);
    first.appendChild(document.createTextNode(" "));
    first.appendChild(el("span", "muted", "#" + concern.id));
    first.appendChild(document.createTextNode(" "));
    first.appendChild(el("span", "tag tag--grave", "Grave"));
    first.appendChild(document.createTextNode(" "));
    first.appendChild(el("span", "tag tag--due", "New"));
    first.appendChild(document.createTextNode(" "));
    first.appendChild(el("span", "tag tag--live", "Just arrived"));
    row.appendChild(first);
    row.appendChild(el("td", "", concern.recorded));
    row.appendChild(el("td", "", concern.raised_by));
    var steps = concern.remaining === 1 ? " required step to do" : " required steps to do";
    row.appendChild(el("td", "", concern.remaining + steps));
    var body = tbody();
    body.insertBefore(row, body.firstChild);
    if (status) {
      status.textContent = "New grave concern on your desk: " + concern.title +
        ", recorded " + concern.recorded + ".";
    }
  }

  var ids = shownIds();
  var since = ids.length ? Math.max.apply(null, ids) : 0;
  var source = new EventSource(desk.getAttribute("data-live") + "?since=" + since);
  source.addEventListener("concern", function (event) {
    try { add(JSON.parse(event.data)); } catch (ignored) { /* a malformed event: skip it */ }
  });
  source.addEventListener("end", function () {
    // Signed out or locked: stop; reloading the page asks to sign in again.
    source.close();
    if (status) { status.textContent = "Live updates stopped: reload the page to see new concerns."; }
  });
}());
