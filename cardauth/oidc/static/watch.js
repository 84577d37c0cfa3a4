// cardauth-oidc's card watch, a page of the provider that a relying party embeds
// (an iframe): when the bridge says the CPS card left the reader, it tells the
// provider, which ends its session and sends every relying party of that session
// a back-channel logout token. The request carries the session's cookie and the
// watch token of this page (a JSON POST to its own origin: no other site can make it).
import { CardAuthBridge } from "./cardauth.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
const status = document.getElementById("watch");
const bridge = new CardAuthBridge({ url: meta("cardauth-bridge") });

async function report() {
  const response = await fetch(meta("cardauth-watch-report"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: meta("cardauth-watch") }),
    credentials: "same-origin",
  });
  if (response.ok) {
    status.textContent = status.dataset.ended;
    status.dataset.state = "ended";
  } else {
    status.dataset.state = "refused";
  }
}

const stop = bridge.onCardEvent(({ kind, state }) => {
  if (kind === "cps" && state === "removed") {
    stop();
    report().catch(() => {
      status.dataset.state = "unreachable";
    });
  }
});
