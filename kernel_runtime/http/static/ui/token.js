// The caller's token, for a runtime started with --token or --access (docs/reference/http-api.md, "Web pages").
// Kept in this tab's sessionStorage only (gone when the tab closes, never sent to another site),
// and sent as "Authorization: Bearer <token>" with the page's own API calls.
"use strict";
window.nbmeshToken = (() => {
  const KEY = "nbmesh.token";
  const listeners = [];

  function get() {
    try {
      return sessionStorage.getItem(KEY) || "";
    } catch {
      return "";  // storage disabled: the page still works on a runtime without a token
    }
  }

  function set(token) {
    try {
      if (token) sessionStorage.setItem(KEY, token);
      else sessionStorage.removeItem(KEY);
    } catch {
      // storage disabled: nothing to keep
    }
    render();
    listeners.forEach((listener) => listener(token));
  }

  function headers() {
    const token = get();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  function render() {
    const input = document.getElementById("token-input");
    const forget = document.getElementById("token-forget");
    if (!input) return;
    const token = get();
    input.value = "";
    input.placeholder = token ? "token in use (this tab only)" : "if the runtime needs one";
    forget.hidden = !token;
  }

  // The Token field, at the end of the page's header.
  function field() {
    const form = document.createElement("form");
    form.id = "token-form";
    form.className = "token";
    form.autocomplete = "off";
    const label = Object.assign(document.createElement("label"), { htmlFor: "token-input", textContent: "Token" });
    const input = Object.assign(document.createElement("input"), { id: "token-input", type: "password", spellcheck: false });
    input.autocomplete = "off";
    const use = Object.assign(document.createElement("button"), { type: "submit", textContent: "Use" });
    const forget = Object.assign(document.createElement("button"), { type: "button", id: "token-forget", textContent: "Forget" });
    form.append(label, input, use, forget);
    return form;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const header = document.querySelector("header.top");
    if (!header) return;
    const form = header.appendChild(field());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = document.getElementById("token-input").value.trim();
      if (value) set(value);
    });
    document.getElementById("token-forget").addEventListener("click", () => set(""));
    render();
  });

  return { get, set, headers, onChange: (listener) => listeners.push(listener) };
})();
