// cardauth-oidc's login page: the CPS card through the bridge (cardauth.js), then
// the same authorization request again, which now gives the relying party its code.
// The PIN is typed on the bridge's own page (or the reader's keypad), never here.
import { CardAuthBridge } from "./cardauth.js";

const $ = (id) => document.getElementById(id);
const language = document.documentElement.lang;
const bridge = new CardAuthBridge({
  url: document.querySelector('meta[name="cardauth-bridge"]').content,
});

/** A JSON call to the provider: the answer, or an Error with its code and sentence. */
async function call(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept-Language": language },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.error?.message ?? "");
    error.code = answer.error?.code ?? `http.${response.status}`;
    throw error;
  }
  return answer;
}

/** A sentence in the page's language, its code in small print (never the code alone). */
function showError(error) {
  const code = typeof error?.code === "string" ? error.code : "";
  const sentence = code && typeof error.message === "string" ? error.message.trim() : "";
  $("error-message").textContent = sentence || $("error").dataset.generic;
  $("error-code").textContent = code;
  $("error").querySelector(".support").hidden = !code;
  $("error").dataset.code = code;
  $("error").hidden = false;
}

$("login").addEventListener("click", async () => {
  $("error").hidden = true;
  $("login").disabled = true;
  $("progress").hidden = false;
  try {
    const challenge = () => call("/cardauth/challenge", {}).then((answer) => answer.challenge);
    const assertion = await bridge.login(challenge);
    await call("/cardauth/login", { assertion });
    // The authorization request again, logged in now (prompt=login is answered:
    // the card was just used, so the request goes on without it).
    const again = new URL(window.location.href);
    again.searchParams.delete("prompt");
    window.location.replace(again);
  } catch (error) {
    showError(error);
    $("login").disabled = false;
    $("progress").hidden = true;
  }
});
