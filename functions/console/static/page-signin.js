// Sign in: the token is checked against the platform, then kept in sessionStorage only.
import { signIn } from "./api.js";
import { el, errorBox } from "./dom.js";

export function render(view, onSignedIn) {
  const input = el("input", { type: "password", name: "token", id: "token", required: true,
                              autocomplete: "off", placeholder: "tfn_…", spellcheck: "false" });
  const status = el("div", { "aria-live": "polite" });
  const form = el("form", { id: "signin", className: "card narrow" },
    el("h1", {}, "Sign in"),
    el("p", { className: "muted" }, "With a user or admin token (taskfn local prints its " +
       "admin token when it starts). It is kept in this tab only, until you sign out or " +
       "close it."),
    el("label", { for: "token" }, "Token"), input,
    el("button", { type: "submit" }, "Sign in"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      await signIn(input.value.trim());
      onSignedIn();
    } catch (error) {
      status.append(errorBox(error));
    }
  });
  view.replaceChildren(form);
  input.focus();
}
