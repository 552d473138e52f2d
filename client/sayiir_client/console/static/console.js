// The console's only script: countdowns, refreshing the data of a page, confirming actions, the raw snapshot.
// Pages work without it (actions then confirm on a page of their own); it never builds HTML from strings.
"use strict";

function duration(seconds) {
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${seconds} s`;
}

// <time data-countdown datetime="ISO">: "in 42 s", then "3 s ago" (marked expired) once it passed.
function tick() {
  const now = Date.now();
  for (const element of document.querySelectorAll("time[data-countdown]")) {
    const left = Math.round((Date.parse(element.dateTime) - now) / 1000);
    element.textContent = left > 0 ? `in ${duration(left)}` : `${duration(-left)} ago`;
    element.classList.toggle("expired", left <= 0);
  }
}

// Each [data-refresh=URL] region is replaced by the region of the same id in a fresh copy of URL. The URL
// holds the page's filters, so a refresh keeps them; the filter form is outside the regions, so typing is kept.
async function refresh() {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    try {
      const response = await fetch(region.dataset.refresh, { credentials: "same-origin" });
      if (!response.ok) continue; // keep what is shown; the next round tries again
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(region.id);
      if (fresh) region.replaceWith(document.adoptNode(fresh));
    } catch (error) {
      // the console is unreachable: keep the page as it is
    }
  }
  tick();
}

// Forms with data-confirm ask first, then tell the server they did (without this script it asks itself).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.dataset.confirm) return;
  if (!window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  form.elements.confirmed.value = "1";
});

// <details data-json=URL>: the raw snapshot, fetched when opened, shown as text.
document.addEventListener(
  "toggle",
  async (event) => {
    const details = event.target;
    if (!details.dataset || !details.dataset.json || !details.open) return;
    const response = await fetch(details.dataset.json, { credentials: "same-origin" });
    details.querySelector("pre").textContent = await response.text();
  },
  true,
);

tick();
setInterval(tick, 1000);
const period = Number(document.body.dataset.refreshSeconds);
if (period > 0) setInterval(refresh, period * 1000);
