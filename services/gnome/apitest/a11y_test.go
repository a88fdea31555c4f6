package apitest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// An accessibility check run inside the page a tab shows, as automated
// checkers do it: every form control has a label, every image has alt text,
// headings do not skip levels, and text contrasts with what is behind it by
// at least 4.5:1 (3:1 for large text), from the computed styles.

// a11yScript returns the page's problems as sentences; none is a pass.
const a11yScript = `(() => {
  const problems = [];
  const visible = el => {
    const s = getComputedStyle(el);
    if (s.display === "none" || s.visibility === "hidden") return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const describe = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.getAttribute("name") ? "[name=" + el.getAttribute("name") + "]" : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");

  // Labels.
  for (const el of document.querySelectorAll("input, select, textarea")) {
    const type = (el.getAttribute("type") || "").toLowerCase();
    if (["hidden", "submit", "button", "reset", "image"].includes(type)) continue;
    const named = (el.labels && [...el.labels].some(l => l.textContent.trim() !== "")) ||
      (el.getAttribute("aria-label") || "").trim() !== "" ||
      (el.getAttribute("aria-labelledby") || "").split(/\s+/).some(id => id && document.getElementById(id) && document.getElementById(id).textContent.trim() !== "") ||
      (el.getAttribute("title") || "").trim() !== "";
    if (!named) problems.push("form control without a label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button")) {
    if (el.textContent.trim() === "" && !(el.getAttribute("aria-label") || "").trim()) problems.push("button without a name: " + describe(el));
  }

  // Alternative text.
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push("image without alt: " + (el.getAttribute("src") || describe(el)));
  }

  // Heading order: the first is h1, and none goes more than one level deeper than the one before.
  let last = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(h.tagName[1]);
    if (level > last + 1) problems.push("heading " + h.tagName.toLowerCase() + " \"" + h.textContent.trim() + "\" follows " + (last ? "h" + last : "no heading"));
    last = level;
  }

  // Contrast, per WCAG 2: relative luminance of sRGB colours.
  const parse = c => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1,
  });
  // background is what lies behind el: its and its ancestors' background
  // colours, blended, over the canvas (white unless the root says otherwise).
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || n.textContent.trim() === "" || ["SCRIPT", "STYLE", "NOSCRIPT", "OPTION"].includes(el.tagName)) continue;
    seen.add(el);
    if (!visible(el) || el.closest("[disabled], [aria-hidden=true]")) continue;
    const s = getComputedStyle(el);
    const fg = parse(s.color);
    if (!fg) continue;
    const bg = background(el);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const got = ratio(over(fg, bg), bg);
    if (got < need) problems.push("contrast " + got.toFixed(2) + ":1 (needs " + need + ":1) for \"" + n.textContent.trim().slice(0, 40) + "\" in " + describe(el));
  }
  return problems;
})()`

// checkA11y fails the test with every problem the check finds on the page
// the tab shows now.
func checkA11y(b *tab, what string) {
	b.t.Helper()
	problems := value(b, "check the accessibility of "+what, chromedp.Evaluate[[]string](a11yScript))
	if len(problems) > 0 {
		b.t.Errorf("%s fails the accessibility check:\n  %s", what, strings.Join(problems, "\n  "))
	}
}

// The check itself finds each kind of problem it looks for, and passes a
// page without them.
func TestA11yCheck(t *testing.T) {
	bin := chromiumPath(t)
	chrome := startChromium(t, bin)
	b := &tab{t: t, ctx: chrome.ctx}
	page := func(body string) {
		t.Helper()
		b.do("open a test page", chromedp.Navigate("data:text/html;charset=utf-8,"+url.PathEscape(`<!doctype html><html lang="en"><body>`+body+`</body></html>`)))
	}
	page(`<h1>Fine</h1><h2>Part</h2><label for="a">Name</label><input id="a"><select aria-label="kind"><option>x</option></select><img src="data:," alt=""><p>Dark on white</p>`)
	if got := value(b, "check a good page", chromedp.Evaluate[[]string](a11yScript)); len(got) != 0 {
		t.Errorf("a good page fails: %q", got)
	}
	page(`<h1>Bad</h1><h3>Skipped</h3><input id="a"><img src="data:,"><p style="color:#aaa">Pale grey on white</p>`)
	got := strings.Join(value(b, "check a bad page", chromedp.Evaluate[[]string](a11yScript)), "\n")
	for _, want := range []string{"without a label: input#a", "image without alt", `heading h3 "Skipped" follows h1`, `"Pale grey on white"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the check misses %q; it says:\n%s", want, got)
		}
	}
}
