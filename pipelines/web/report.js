/* sarcube report: the map, the pair list and the tables, drawn from window.SARCUBE_REPORT (data.js).
 *
 * Coordinates are the cube's projected CRS in metres: Leaflet's CRS.Simple with a transformation that puts
 * the scene's north-west corner at the pixel origin (lat = northing, lng = easting), so scale bar and popups
 * speak metres and no web tiles are needed. window.sarcubeReport is a small hook for tests and notebooks.
 */
(function () {
  "use strict";

  var D = window.SARCUBE_REPORT;
  if (!D) {
    throw new Error("data.js did not load: keep it next to index.html");
  }

  // --- formatting ------------------------------------------------------------------------------------------
  var COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function num(v, digits) {
    return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
  }
  function area(m2) {
    if (m2 === null || m2 === undefined) return "–";
    return m2 >= 10000 ? (m2 / 10000).toFixed(2) + " ha" : Math.round(m2).toLocaleString("en") + " m²";
  }
  function compass(deg) {
    return deg === null || deg === undefined ? "" : COMPASS[Math.round(deg / 22.5) % 16];
  }
  function aspect(deg) {
    return deg === null || deg === undefined ? "–" : Math.round(deg) + "° " + compass(deg);
  }
  function pairDates(p) {
    return p.reference ? p.reference + " → " + p.activity : "event";
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- probability colours: YlOrRd from the threshold to 1 ----------------------------------------------
  var RAMP = [[255, 237, 160], [254, 178, 76], [253, 141, 60], [240, 59, 32], [189, 0, 38]];
  var threshold = D.prediction.threshold;

  function probabilityColour(p) {
    var t = (p - threshold) / Math.max(1 - threshold, 1e-9);
    t = Math.min(Math.max(isFinite(t) ? t : 0, 0), 1) * (RAMP.length - 1);
    var i = Math.min(Math.floor(t), RAMP.length - 2);
    var f = t - i;
    var c = RAMP[i].map(function (a, k) { return Math.round(a + f * (RAMP[i + 1][k] - a)); });
    return "rgb(" + c.join(",") + ")";
  }

  // --- the map ----------------------------------------------------------------------------------------------
  var west = D.bounds[0], south = D.bounds[1], east = D.bounds[2], north = D.bounds[3];
  var crs = L.extend({}, L.CRS.Simple, { transformation: new L.Transformation(1, -west, -1, north) });
  var sceneBounds = L.latLngBounds([south, west], [north, east]);
  // zoom 0 is 1 m per screen pixel: a scene of kilometres needs negative zooms, so no floor until it is fitted
  var map = L.map("map", {
    crs: crs, minZoom: -30, maxZoom: 30, zoomSnap: 0.25, zoomDelta: 0.5, wheelPxPerZoomLevel: 90,
    attributionControl: true,
  });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.attributionControl.addAttribution(esc(D.crs) + " · " + esc(D.pixel_m[0]) + " m pixels · " + esc(D.generator));
  map.fitBounds(sceneBounds, { padding: [8, 8] });
  var fitZoom = map.getZoom();
  map.setMinZoom(fitZoom - 2);
  map.setMaxZoom(fitZoom + 6 + Math.log2(D.display.step));
  map.setMaxBounds(sceneBounds.pad(0.6));

  var hillshade = L.imageOverlay(D.hillshade, sceneBounds, {
    className: "sarcube-image sarcube-hillshade", interactive: false,
  });
  hillshade.addTo(map);
  var firstComposite = D.pairs.map(function (p) { return p.composite; }).filter(Boolean)[0] || D.hillshade;
  var composite = L.imageOverlay(firstComposite, sceneBounds, {
    className: "sarcube-image sarcube-composite", opacity: 0.85,
  });
  composite.addTo(map);
  var labelLayer = L.layerGroup().addTo(map);
  var detectionLayer = L.layerGroup().addTo(map);
  var overlayNames = { "SAR change composite": composite, "Detections": detectionLayer };
  if (D.labels.length) overlayNames["Labels (reference)"] = labelLayer;
  var baseLayers = { "Hillshade (DEM)": hillshade };
  L.control.layers(baseLayers, overlayNames, { collapsed: false, position: "topright" }).addTo(map);
  L.control.scale({ metric: true, imperial: false, maxWidth: 160, position: "bottomleft" }).addTo(map);

  var NorthArrow = L.Control.extend({
    options: { position: "topleft" },
    onAdd: function () {
      var box = L.DomUtil.create("div", "map-box north");
      box.title = "Grid north of " + D.crs + " (the map is drawn in the cube's projected coordinates)";
      box.innerHTML =
        '<svg width="26" height="34" viewBox="0 0 26 34" aria-label="north arrow">' +
        '<text x="13" y="10" text-anchor="middle" font-size="11" font-weight="700" fill="#1b2430">N</text>' +
        '<path d="M13 12 L20 32 L13 27 Z" fill="#1b2430"/>' +
        '<path d="M13 12 L6 32 L13 27 Z" fill="#fff" stroke="#1b2430" stroke-width="1"/>' +
        "</svg><div class='caption'>grid</div>";
      return box;
    },
  });
  new NorthArrow().addTo(map);

  var Legend = L.Control.extend({
    options: { position: "bottomright" },
    onAdd: function () {
      var box = L.DomUtil.create("div", "map-box legend");
      var stops = RAMP.map(function (c, i) {
        return "rgb(" + c.join(",") + ") " + (100 * i) / (RAMP.length - 1) + "%";
      });
      box.innerHTML =
        "<h4>Detections: mean probability</h4>" +
        '<div class="ramp" style="background:linear-gradient(to right,' + stops.join(",") + ')"></div>' +
        '<div class="ticks"><span>' + threshold.toFixed(2) + " (threshold)</span><span>" +
        ((1 + threshold) / 2).toFixed(2) + "</span><span>1.00</span></div>" +
        (D.labels.length ? '<div class="row"><span class="line"></span>label outline (debris)</div>' : "") +
        "<h4 style='margin-top:6px'>SAR change composite</h4>" +
        '<div class="row"><span class="chip" style="background:#8a8a8a"></span>grey: unchanged backscatter</div>' +
        '<div class="row"><span class="chip" style="background:#3fbf3f"></span>' +
        "green: brighter in activity (debris)</div>" +
        '<div class="row"><span class="chip" style="background:#b040b0"></span>magenta: darker (wet snow)</div>' +
        '<label class="row" style="display:block;margin-top:4px">composite opacity' +
        '<input type="range" id="composite-opacity" min="0" max="100" value="85"></label>';
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    },
  });
  new Legend().addTo(map);
  document.getElementById("composite-opacity").addEventListener("input", function (e) {
    composite.setOpacity(Number(e.target.value) / 100);
  });

  var Banner = L.Control.extend({
    options: { position: "topleft" },
    onAdd: function () {
      this._div = L.DomUtil.create("div", "unpredicted-banner");
      this._div.style.display = "none";
      return this._div;
    },
    show: function (text) {
      this._div.textContent = text || "";
      this._div.style.display = text ? "" : "none";
    },
  });
  var banner = new Banner().addTo(map);

  // --- detections ------------------------------------------------------------------------------------------
  var features = D.detections;
  var byId = {};
  features.forEach(function (f) { byId[f.properties.id] = f; });
  var layers = {}; // detection id -> Leaflet layer of the selected pair
  var highlighted = null;

  function baseStyle(f) {
    var c = probabilityColour(f.properties.mean_probability);
    return { color: c, weight: 1.6, opacity: 1, fillColor: c, fillOpacity: 0.45, className: "sarcube-detection" };
  }

  function popupHtml(p) {
    var rows = [
      ["Reference", p.reference || "–"], ["Activity", p.activity || "–"], ["Area", area(p.area_m2)],
      ["Mean probability", num(p.mean_probability, 2)], ["Max probability", num(p.max_probability, 2)],
      ["Elevation", p.elevation_m === null ? "–" : Math.round(p.elevation_m) + " m"],
      ["Slope", p.slope_deg === null ? "–" : num(p.slope_deg, 1) + "°"], ["Aspect", aspect(p.aspect_deg)],
      ["PAR", p.par_deg === null ? "–" : num(p.par_deg, 1) + "°"],
    ];
    return '<div class="popup"><h3>Detection #' + p.id + "</h3><table>" +
      rows.map(function (r) { return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>"; }).join("") +
      "</table></div>";
  }

  function highlight(id, zoom) {
    if (highlighted !== null && layers[highlighted]) layers[highlighted].setStyle(baseStyle(byId[highlighted]));
    highlighted = id;
    document.querySelectorAll("#detections tbody tr").forEach(function (tr) {
      tr.classList.toggle("highlight", Number(tr.dataset.id) === id);
    });
    var layer = layers[id];
    if (!layer) return;
    layer.setStyle({ color: "#ffffff", weight: 3.5, fillOpacity: 0.7 });
    layer.bringToFront();
    if (zoom) {
      map.fitBounds(layer.getBounds(), { maxZoom: fitZoom + 3, padding: [60, 60] });
      layer.openPopup(layer.getBounds().getCenter());
    }
  }

  // --- pairs -----------------------------------------------------------------------------------------------
  var current = 0;
  var pairList = document.getElementById("pairs");
  D.pairs.forEach(function (p, i) {
    var li = el("li", { "data-index": String(i), title: p.predicted ? "" : "not predicted for this pair" });
    if (!p.predicted) li.classList.add("unpredicted");
    li.appendChild(el("span", { className: "idx" }, p.index >= 0 ? String(p.index) : ""));
    var text = el("span", { className: "dates" }, pairDates(p));
    text.appendChild(el("span", { className: "orbit" }, p.orbit !== null ? "relative orbit " + p.orbit : ""));
    li.appendChild(text);
    var count = p.predicted ? String(p.detections) : "n/p";
    li.appendChild(el("span", { className: "count" + (p.detections ? "" : " none") }, count));
    li.addEventListener("click", function () { selectPair(i); });
    pairList.appendChild(li);
  });

  function selectPair(i) {
    i = Math.max(0, Math.min(D.pairs.length - 1, Number(i)));
    current = i;
    var pair = D.pairs[i];
    if (pair.composite) {
      composite.setUrl(pair.composite);
      if (!map.hasLayer(composite)) composite.addTo(map);
    } else if (map.hasLayer(composite)) {
      map.removeLayer(composite);
    }
    detectionLayer.clearLayers();
    layers = {};
    highlighted = null;
    features.filter(function (f) { return f.properties.pair_index === pair.index; }).forEach(function (f) {
      var layer = L.geoJSON(f, { style: baseStyle }).getLayers()[0];
      layer.bindPopup(popupHtml(f.properties));
      layer.on("click", function () { highlight(f.properties.id, false); scrollRow(f.properties.id); });
      layers[f.properties.id] = layer;
      detectionLayer.addLayer(layer);
    });
    labelLayer.clearLayers();
    var labels = D.labels.filter(function (f) {
      return f.properties.pair_index === pair.index || f.properties.pair_index === -1;  // -1: a static label
    });
    labels.forEach(function (f) {
      labelLayer.addLayer(L.geoJSON(f, {
        style: { color: "#00d5ff", weight: 2.2, dashArray: "5 3", fill: false, className: "sarcube-label" },
        interactive: false,
      }));
    });
    pairList.querySelectorAll("li").forEach(function (li, k) { li.classList.toggle("selected", k === i); });
    var selected = pairList.children[i];
    if (selected && selected.scrollIntoView) selected.scrollIntoView({ block: "nearest" });
    var now = document.getElementById("pair-now");
    now.innerHTML = "";
    now.appendChild(el("div", { className: "dates" }, pairDates(pair)));
    now.appendChild(el("div", { className: "meta" },
      (pair.index >= 0 ? "pair " + pair.index + " · " : "") +
      (pair.orbit !== null ? "orbit " + pair.orbit + " · " : "") +
      (pair.predicted ? pair.detections + " detection" + (pair.detections === 1 ? "" : "s") : "not predicted")));
    document.getElementById("prev-pair").disabled = i === 0;
    document.getElementById("next-pair").disabled = i === D.pairs.length - 1;
    banner.show(pair.predicted ? "" : "No prediction for this pair: composite and labels only");
    renderTable();
  }

  document.getElementById("prev-pair").addEventListener("click", function () { selectPair(current - 1); });
  document.getElementById("next-pair").addEventListener("click", function () { selectPair(current + 1); });
  document.addEventListener("keydown", function (e) {
    if (e.target && /input|textarea|select/i.test(e.target.tagName)) return;
    if (e.key === "ArrowLeft") selectPair(current - 1);
    if (e.key === "ArrowRight") selectPair(current + 1);
  });

  // --- detections table ------------------------------------------------------------------------------------
  var COLUMNS = [
    { key: "id", title: "#", cell: function (p) { return String(p.id); } },
    { key: "activity", title: "Pair", text: true, cell: pairDates },
    { key: "area_m2", title: "Area", cell: function (p) { return area(p.area_m2); } },
    { key: "mean_probability", title: "Mean p", cell: function (p) { return num(p.mean_probability, 2); } },
    { key: "max_probability", title: "Max p", cell: function (p) { return num(p.max_probability, 2); } },
    { key: "elevation_m", title: "Elevation (m)", cell: function (p) { return num(p.elevation_m, 0); } },
    { key: "slope_deg", title: "Slope (°)", cell: function (p) { return num(p.slope_deg, 1); } },
    { key: "aspect_deg", title: "Aspect", cell: function (p) { return aspect(p.aspect_deg); } },
    { key: "par_deg", title: "PAR (°)", cell: function (p) { return num(p.par_deg, 1); } },
  ];
  var sortKey = "mean_probability";
  var sortAscending = false;
  var table = document.getElementById("detections");
  var headRow = el("tr");
  COLUMNS.forEach(function (c) {
    var th = el("th", { className: c.text ? "text" : "", "data-key": c.key, title: "sort by " + c.title }, c.title);
    th.addEventListener("click", function () {
      if (sortKey === c.key) sortAscending = !sortAscending;
      else { sortKey = c.key; sortAscending = c.text === true; }
      renderTable();
    });
    headRow.appendChild(th);
  });
  table.tHead.appendChild(headRow);
  var onlyPair = document.getElementById("only-pair");
  onlyPair.addEventListener("change", renderTable);

  function renderTable() {
    var pair = D.pairs[current];
    var rows = features.filter(function (f) { return !onlyPair.checked || f.properties.pair_index === pair.index; });
    rows.sort(function (a, b) {
      var x = a.properties[sortKey], y = b.properties[sortKey];
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      var order = x < y ? -1 : x > y ? 1 : a.properties.id - b.properties.id;
      return sortAscending ? order : -order;
    });
    headRow.querySelectorAll("th").forEach(function (th) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("asc", th.dataset.key === sortKey && sortAscending);
    });
    var body = table.tBodies[0];
    body.innerHTML = "";
    rows.forEach(function (f) {
      var p = f.properties;
      var tr = el("tr", { "data-id": String(p.id) });
      COLUMNS.forEach(function (c, k) {
        var td = el("td", { className: c.text ? "text" : "" }, c.cell(p));
        if (k === 0) {
          var colour = probabilityColour(p.mean_probability);
          var swatch = el("span", { className: "swatch", style: "background:" + colour });
          td.insertBefore(swatch, td.firstChild);
        }
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () {
        var target = D.pairs.findIndex(function (q) { return q.index === p.pair_index; });
        if (target !== current) selectPair(target);
        highlight(p.id, true);
      });
      if (p.id === highlighted) tr.classList.add("highlight");
      body.appendChild(tr);
    });
    var scope = onlyPair.checked ? " in " + pairDates(pair) : " in all pairs";
    document.getElementById("table-title").textContent = "Detections" + scope + " (" + rows.length + ")";
    if (!rows.length) {
      var tr = el("tr");
      tr.appendChild(el("td", { className: "empty text", colspan: String(COLUMNS.length) },
        pair.predicted || !onlyPair.checked ? "No detection above the threshold." : "This pair was not predicted."));
      body.appendChild(tr);
    }
  }

  function scrollRow(id) {
    var tr = table.querySelector('tbody tr[data-id="' + id + '"]');
    if (tr && tr.scrollIntoView) tr.scrollIntoView({ block: "nearest" });
  }

  // --- evaluation and provenance ---------------------------------------------------------------------------
  function kvTable(pairs) {
    var t = el("table", { className: "kv" });
    pairs.forEach(function (kv) {
      var tr = el("tr");
      tr.appendChild(el("th", {}, kv[0]));
      tr.appendChild(el("td", {}, kv[1]));
      t.appendChild(tr);
    });
    return t;
  }

  if (D.evaluation) {
    var section = document.getElementById("evaluation-section");
    var box = document.getElementById("evaluation");
    section.hidden = false;
    if (D.evaluation.rows.length) {
      var wrap = el("div", { className: "eval-wrap" });
      var t = el("table", { className: "grid-table eval-table" });
      // metrics down, methods across: the side panel is narrow, the papers' tables are wide
      var hr = el("tr");
      hr.appendChild(el("th", { className: "text" }, "Metric"));
      D.evaluation.rows.forEach(function (r) {
        hr.appendChild(el("th", { className: r.this ? "this" : "" }, r.method));
      });
      t.appendChild(hr);
      D.evaluation.columns.forEach(function (c, k) {
        var tr = el("tr");
        tr.appendChild(el("td", { className: "text" }, c));
        D.evaluation.rows.forEach(function (r) {
          tr.appendChild(el("td", { className: r.this ? "this" : "" }, r.cells[k]));
        });
        t.appendChild(tr);
      });
      wrap.appendChild(t);
      box.appendChild(wrap);
    }
    box.appendChild(el("div", { className: "note" }, D.evaluation.note));
  }

  var prov = document.getElementById("provenance-body");
  prov.appendChild(el("h3", {}, "Cube"));
  prov.appendChild(kvTable(D.provenance.cube));
  prov.appendChild(el("h3", {}, "Prediction"));
  prov.appendChild(kvTable(D.provenance.prediction));
  if (D.provenance.acquisitions.length) {
    prov.appendChild(el("h3", {}, "Acquisitions (" + D.provenance.acquisitions.length + ")"));
    prov.appendChild(kvTable(D.provenance.acquisitions.map(function (a) { return [a[0], a.slice(1).join(" · ")]; })));
  }

  var predicted = D.pairs.filter(function (p) { return p.predicted; }).length;
  document.getElementById("subtitle").textContent =
    D.prediction.name + " · " + (D.prediction.operating_point || "threshold " + threshold) + " · objects ≥ " + D.prediction.min_area_m2 + " m² · " +
    features.length + " detections in " + predicted + " of " + D.pairs.length + " pairs · " + D.crs;

  // start on the first predicted pair with detections, else the first predicted one
  var start = D.pairs.findIndex(function (p) { return p.detections > 0; });
  if (start < 0) start = Math.max(0, D.pairs.findIndex(function (p) { return p.predicted; }));
  selectPair(start);

  window.sarcubeReport = {
    ready: true,
    pairCount: function () { return D.pairs.length; },
    polygonCount: function () { return features.length; },
    renderedPolygonCount: function () { return document.querySelectorAll("#map path.sarcube-detection").length; },
    labelCount: function () { return document.querySelectorAll("#map path.sarcube-label").length; },
    setPair: function (i) { selectPair(i); return current; },
    pair: function () { return current; },
    zoom: function () { return map.getZoom(); },
    sceneInView: function () { return map.getBounds().contains(sceneBounds); },
    metresPerPixel: function () { return 1 / Math.pow(2, map.getZoom()); },
    highlighted: function () { return highlighted; },
    overlaySrc: function () { return composite.getElement() ? composite.getElement().src : null; },
  };
})();
