// The pages of « Médecin traitant en ligne »: card login with cardauth.js, a patient
// lookup co-signed by the Vitale card, e-prescriptions signed with the CPS card
// (cardauth.js getSigningCertificate() and sign()) and checked, and logout when the
// CPS card leaves the reader. Every page has the header's #session: who is logged
// in, and the logout button.
// The search page (#login-view, #app-view) holds no data until /api/me answers; the
// journal, prescription and verification pages come from the server logged in.
import { CardAuthBridge } from "/vendor/cardauth.js";

const $ = (id) => document.getElementById(id);
const language = document.documentElement.lang;
const bridge = new CardAuthBridge({
  url: document.querySelector('meta[name="cardauth-bridge"]').content,
});
let stopCardEvents = null;
let vitaleRemovals = 0; // an answer about a card that has left meanwhile is not shown

/**
 * A JSON call to this teleservice: the answer, or an Error with the server's code
 * and its sentence (in the page's language). An answer that is not the server's
 * JSON error (a proxy's page) gives an Error with an "http.STATUS" code and no
 * sentence; a network failure, fetch's own TypeError.
 */
async function call(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", "Accept-Language": language },
    body: body === undefined ? undefined : JSON.stringify(body),
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

const challenge = () => call("/cardauth/challenge", {}).then((answer) => answer.challenge);

// -- the search page ------------------------------------------------------------------

/**
 * An error as the professional reads it: a sentence in the page's language, and its
 * code in small print for support, never the code alone. The server's errors and
 * cardauth.js's come with a code and a sentence (error.code, error.message); any
 * other (no code, or no sentence) gets the page's generic sentence.
 */
function showError(error) {
  const code = typeof error?.code === "string" ? error.code : "";
  const sentence = code && typeof error.message === "string" ? error.message.trim() : "";
  $("error-message").textContent = sentence || $("error").dataset.generic;
  $("error-code").textContent = code;
  $("error").querySelector(".support").hidden = !code;
  $("error").dataset.code = code;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").dataset.code = "";
  $("error-message").textContent = "";
  $("error-code").textContent = "";
}

/** Say why the page logged out: "cardRemoved" or "sessionEnded" (its data-* texts). */
function showNotice(reason) {
  $("notice").textContent = $("notice").dataset[reason];
  $("notice").hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
  $("notice").textContent = "";
}

function showLogin() {
  stopCardEvents?.();
  stopCardEvents = null;
  $("session").hidden = true;
  $("professional").textContent = "";
  $("app-view").hidden = true;
  $("access").textContent = "";
  $("result").textContent = "";
  $("login-view").hidden = false;
}

function showProfessional(me) {
  clearNotice();
  $("professional").textContent = me.who;
  $("session").hidden = false;
  $("access").textContent = me.access_text;
  $("lookup").disabled = !me.may_look_up;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  stopCardEvents ??= bridge.onCardEvent(({ kind, state }) => {
    // Removing the CPS card ends the session, on the server too (DESIGN.md).
    if (kind === "cps" && state === "removed") logout("cardRemoved");
    // The patient took their card back: what was found about them goes with it.
    if (kind === "vitale" && state === "removed") forgetPatient();
  });
}

function forgetPatient() {
  vitaleRemovals += 1;
  $("result").textContent = "";
}

/** Log out; `reason`, when the page does it by itself, is said on the login view. */
async function logout(reason) {
  showLogin(); // at once: the page shows nothing more of the professional's
  if (reason) showNotice(reason);
  await endSession(reason);
}

/**
 * End the session on the server; the card forgets the PIN too (the next login, here
 * or elsewhere, asks for it). In OIDC mode, the session ends at the identity
 * provider as well: the page goes there (RP-initiated logout) and comes back.
 */
async function endSession(reason) {
  const provider = $("logout").dataset.oidcLogout;
  if (provider) {
    await bridge.logout().catch(() => {});
    window.location.assign(reason ? `${provider}?ended=${reason}` : provider);
    return;
  }
  await Promise.all([call("/cardauth/logout", {}).catch(() => {}), bridge.logout()]);
}

function showResult(result) {
  const box = $("result");
  box.replaceChildren(
    ...result.summary.map((line) => {
      const paragraph = document.createElement("p");
      paragraph.textContent = line;
      return paragraph;
    }),
  );
}

function startSearchPage() {
  $("login").addEventListener("click", async () => {
    clearError();
    clearNotice();
    const provider = $("login").dataset.oidcLogin;
    if (provider) {
      window.location.assign(provider); // OIDC mode: the card login is the provider's
      return;
    }
    try {
      const assertion = await bridge.login(challenge);
      await call("/cardauth/login", { assertion });
      showProfessional(await call("/api/me"));
    } catch (error) {
      if (error.code === "bridge.replaced") return; // a newer click took over
      showError(error);
    }
  });

  $("lookup").addEventListener("click", async () => {
    clearError();
    $("result").textContent = "";
    const removalsBefore = vitaleRemovals;
    try {
      const assertion = await bridge.login(challenge, { vitale: true });
      const result = await call("/api/lookup", { assertion });
      if (vitaleRemovals === removalsBefore) showResult(result);
    } catch (error) {
      if (error.code === "login.required") {
        showLogin(); // the server ended the session (its length, a logout elsewhere)
        showNotice("sessionEnded");
        return;
      }
      if (error.code === "bridge.replaced") return; // a newer click took over
      showError(error);
    }
  });

  $("logout").addEventListener("click", () => logout()); // the professional knows why

  noticeFromAddress();
  call("/api/me").then(showProfessional, showLogin);
}

// -- the prescription page (a doctor's) ------------------------------------------------

/** The form as the server takes it: the patient's name and the medication lines. */
function prescriptionForm() {
  const value = (element) => element.value.trim();
  return {
    patient: { given_name: value($("patient-given-name")), surname: value($("patient-surname")) },
    medications: [...document.querySelectorAll("#medications .medication")]
      .map((line) => ({
        name: value(line.querySelector(".medication-name")),
        dosage: value(line.querySelector(".medication-dosage")),
        duration: value(line.querySelector(".medication-duration")),
      }))
      .filter((line) => line.name || line.dosage || line.duration),
  };
}

function startPrescriptionPage() {
  startServerPage();
  if ($("prepare") === null) return; // this card may not sign prescriptions
  let certificate = null; // the card's signing certificate, asked once per page
  let prepared = null; // {id, hash, document_name}: what waits for the signature

  // The patient's name from the Vitale card in the reader (co-signed, as a lookup).
  $("read-vitale").addEventListener("click", async () => {
    clearError();
    try {
      const assertion = await bridge.login(challenge, { vitale: true });
      const patient = await call("/api/prescriptions/patient", { assertion });
      $("patient-given-name").value = patient.given_name;
      $("patient-surname").value = patient.surname;
    } catch (error) {
      if (error.code === "bridge.replaced") return;
      showError(error);
    }
  });

  $("add-medication").addEventListener("click", () => {
    const lines = $("medications").querySelectorAll(".medication");
    if (lines.length >= Number($("medications").dataset.max)) return;
    const line = lines[0].cloneNode(true);
    for (const input of line.querySelectorAll("input")) input.value = "";
    $("medications").append(line);
  });

  // Step 1: the certificate (the bridge's window: "allow"), then the server prepares
  // the PDF for it and answers the hash the card is to sign.
  $("prepare").addEventListener("click", async () => {
    clearError();
    $("prepared").hidden = true;
    $("signed").hidden = true;
    prepared = null;
    try {
      certificate ??= (await bridge.getSigningCertificate()).certificate;
      prepared = await call("/api/prescriptions", { ...prescriptionForm(), certificate });
      $("document-name").textContent = prepared.document_name;
      $("document-hash").textContent = prepared.hash_hex;
      $("prepared").hidden = false;
    } catch (error) {
      if (error.code === "bridge.replaced") return;
      if (error.code === "prescription.other_professional") certificate = null;
      showError(error);
    }
  });

  // Step 2: the card signs the hash (the bridge's window shows it and asks the PIN),
  // the server finishes the PDF with that signature.
  $("sign").addEventListener("click", async () => {
    clearError();
    if (prepared === null) return;
    const { id, hash, document_name: documentName } = prepared;
    try {
      const { signature } = await bridge.sign({ hash, documentName, certificate });
      const done = await call(`/api/prescriptions/${encodeURIComponent(id)}/signature`, {
        signature,
      });
      prepared = null;
      $("prepared").hidden = true;
      $("signed-text").textContent = done.signed_text;
      $("download").href = done.download;
      $("signed").hidden = false;
    } catch (error) {
      if (error.code === "bridge.replaced") return;
      showError(error);
    }
  });
}

// -- the verification page --------------------------------------------------------------

function startVerifyPage() {
  startServerPage();
  $("check").addEventListener("click", async () => {
    clearError();
    $("verdict").replaceChildren();
    $("verdict").dataset.verdict = "";
    const [file] = $("document").files;
    const upload = new FormData();
    if (file) upload.append("document", file);
    try {
      const response = await fetch("/api/verify", {
        method: "POST",
        headers: { "Accept-Language": language },
        body: upload,
        credentials: "same-origin",
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw Object.assign(new Error(answer.error?.message ?? ""), {
          code: answer.error?.code ?? `http.${response.status}`,
        });
      }
      $("verdict").dataset.verdict = answer.verdict;
      $("verdict").dataset.code = answer.code ?? "";
      const lines = answer.summary.map((line) => {
        const paragraph = document.createElement("p");
        paragraph.textContent = line;
        return paragraph;
      });
      if (answer.code) {
        // The refusal's stable code, in small print under the sentences, for support.
        const support = document.createElement("p");
        const small = document.createElement("small");
        const code = document.createElement("code");
        code.textContent = answer.code;
        small.append(`${$("verdict").dataset.codeLabel} `, code);
        support.append(small);
        lines.push(support);
      }
      $("verdict").replaceChildren(...lines);
    } catch (error) {
      showError(error);
    }
  });
}

// -- the pages the server renders logged in (journal, prescriptions, verification) ------

function startServerPage() {
  $("logout").addEventListener("click", () => leavePage());
  // Removing the CPS card ends the session here too.
  stopCardEvents = bridge.onCardEvent(({ kind, state }) => {
    if (kind === "cps" && state === "removed") leavePage("cardRemoved");
  });
}

/** Log out from a page the server rendered: what it shows goes at once, then the search page,
 * which says why when `reason` is given (?ended=, read by startSearchPage). */
async function leavePage(reason) {
  stopCardEvents?.();
  stopCardEvents = null;
  $("session").hidden = true;
  document.querySelector("main .panel")?.remove();
  if ($("logout").dataset.oidcLogout) return endSession(reason); // back to the search page
  await endSession(reason);
  const next = new URL($("search").href);
  if (reason) next.searchParams.set("ended", reason);
  window.location.replace(next);
}

/** The reason a page that logged out by itself passed on (?ended=), said once. */
function noticeFromAddress() {
  const address = new URL(window.location.href);
  const reason = address.searchParams.get("ended");
  if (reason === null) return;
  if (Object.hasOwn($("notice").dataset, reason)) showNotice(reason);
  address.searchParams.delete("ended");
  window.history.replaceState(null, "", address);
}

if ($("login-view") !== null) startSearchPage();
else if ($("prescription-view") !== null) startPrescriptionPage();
else if ($("verify-view") !== null) startVerifyPage();
else startServerPage();
