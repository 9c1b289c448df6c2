// Building DOM nodes from data. Text always goes in as text (never parsed as HTML), so span
// attributes a pipeline recorded can never run as script in the page.

const SVG_NS = "http://www.w3.org/2000/svg";

/** h("a", {href: "#/runs", class: "x"}, "text", child, [more]) → element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace everything inside el. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message box: what happened and what to do. */
export function notice(kind, title, ...body) {
  return h("div", {class: `notice ${kind}`, role: kind === "error" ? "alert" : "status"},
    h("strong", {}, title), ...body.map((part) => h("p", {}, part)));
}

/** Pretty JSON in a <pre>, or a dash when absent. */
export function jsonBlock(value) {
  if (value === null || value === undefined) return h("span", {class: "muted"}, "—");
  return h("pre", {class: "json"}, JSON.stringify(value, null, 2));
}

/**
 * Table rows rendered a page at a time behind a "Show N more of M" button, so a long list never
 * costs more DOM than the user asked to see. reset(items) starts over with other items.
 */
export class PagedRows {
  constructor(items, render, page) {
    this.render = render;
    this.page = page;
    this.body = h("tbody", {});
    this.more = h("button", {type: "button", class: "secondary", onclick: () => this.showMore()});
    this.reset(items);
  }

  reset(items) {
    this.items = items;
    this.shown = 0;
    this.body.replaceChildren();
    this.showMore();
  }

  showMore() {
    const next = this.items.slice(this.shown, this.shown + this.page);
    this.body.append(...next.map(this.render));
    this.shown += next.length;
    const left = this.items.length - this.shown;
    this.more.textContent = `Show ${Math.min(this.page, left).toLocaleString("en-US")} more of ${left.toLocaleString("en-US")}`;
    this.more.hidden = left <= 0;
  }

  /** Show pages until the item at index is among the rows. */
  showUntil(index) {
    while (index >= this.shown) this.showMore();
  }
}
