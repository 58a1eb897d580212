(() => {
  const say = document.getElementById("st");
  for (const a of document.querySelectorAll('a[type="application/rss+xml"]')) {
    const d = a.closest("[data-copy]").dataset;
    const b = document.createElement("button"), name = a.closest("li")?.querySelector(".n")?.textContent;
    b.type = "button";
    b.className = "cp";
    b.textContent = d.copy;
    if (name) b.setAttribute("aria-label", d.copy + ": " + name);
    b.addEventListener("click", () => {
      const url = a.href, done = () => {
        b.textContent = say.textContent = d.copied;
        setTimeout(() => { b.textContent = d.copy; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).then(done, () => prompt(d.copy, url));
      else prompt(d.copy, url);
    });
    a.parentNode.append(b);
  }
  for (const box of document.querySelectorAll(".tg")) {
    const d = box.dataset;
    const form = box.querySelector(".flt"), q = form.querySelector("input"), n = form.querySelector("output");
    const rows = [...box.querySelectorAll("ol>li")].map((li) => [li, li.querySelector(".n").textContent.toLowerCase()]);
    form.hidden = false;
    q.addEventListener("input", () => {
      if (location.hash.startsWith("#" + box.id + "-")) location.replace("#" + box.id);
      const v = q.value.trim().toLowerCase();
      let shown = 0;
      for (const [li, name] of rows) {
        li.hidden = !name.includes(v);
        if (!li.hidden) shown++;
      }
      n.textContent = v ? d.matching.replace("{n}", shown) : "";
    });
  }
})();
