// cardauth.js: the web page's side of the cardauth bridge (cardauth-bridge), the
// local program that lets a health professional log in to a teleservice with the
// CPS card, and sign the documents it prepares. An ES module with no dependencies
// and no build step.
//
// Usage, on a page of a teleservice (its server issues challenges and verifies
// assertions with cardauth's verifier):
//
//   import { CardAuthBridge } from "/static/cardauth.js";
//   const bridge = new CardAuthBridge(); // the bridge at http://127.0.0.1:24790
//   const post = (path, body) => fetch(path, { method: "POST", headers: { "Content-Type":
//     "application/json" }, body: JSON.stringify(body) }).then((response) => response.json());
//   loginButton.addEventListener("click", async () => {
//     try { // login() opens its window first, then asks the server for a challenge
//       const assertion = await bridge.login(() => post("/cardauth/challenge", {}).then((r) => r.challenge));
//       showUser(await post("/cardauth/login", { assertion })); // the server verifies it
//     } catch (error) { showProblem(error.message); } // a sentence; error.code is stable
//   });
//   logoutButton.addEventListener("click", () => bridge.logout()); // next login asks the PIN
//   bridge.onCardEvent(({ kind, state }) => kind === "cps" && state === "removed" && logOut());
//
// How a login goes (the bridge's API is described in webbridge/openapi.yaml):
//
// 1. login() opens an empty named popup window at once, before any await, so that
//    the click that called it still counts as a user gesture (popup blockers allow
//    a window.open only then).
// 2. It asks the bridge for an assertion: POST /v1/authenticate {challenge, vitale}.
//    A site that the professional approved, with the PIN verified a short while
//    ago, gets it there and then ("fast path"): the empty popup is closed.
// 3. Otherwise (the bridge says "interaction_required", or refuses the call
//    without CORS because this site is not approved yet, which to a page looks
//    exactly like a bridge that is not running), login() opens a login on the
//    bridge: POST /v1/interactions {challenge, vitale, request_id, page_id}, two
//    random identifiers of its own. That is a CORS request, whose Origin header
//    the browser always sets (from an https page to the bridge's http address
//    too): the bridge binds that origin, never a value the page chose, into what
//    the card signs. Then the popup goes to the bridge's page for that login,
//    /interaction/{page_id}, where the professional sees which site asks, types
//    the PIN and allows or refuses. The PIN is typed there (or on the reader's
//    keypad): it never reaches this page, nor this script.
// 4. login() collects the outcome from GET /v1/interactions/{request_id}. A site
//    the professional has not approved reads nothing of its login until the
//    professional has answered on the bridge's page: no page learns that the
//    bridge runs unless the professional lets it.
//
// The bridge's page sets Cross-Origin-Opener-Policy: same-origin, so this page
// loses its handle on the popup as soon as the bridge's page loads there
// (popup.closed may read true although the window is open): the outcome comes
// from the bridge, never from watching the window. If the professional closes the
// window, calling login() again starts afresh: the earlier call ends with
// "bridge.replaced", and the bridge drops the login that waited. Pass an
// AbortSignal to login() to give up sooner.
//
// Local Network Access (Chromium 142 and later): a page served from the Internet
// may reach the bridge on 127.0.0.1 only once the professional has allowed it (the
// browser asks, the first time this script calls the bridge; a managed
// workstation may allow it by policy: docs/bridge.md). When it is refused, login()
// fails with "bridge.permission_denied", whose message says how to allow it.
//
// Signing (deferred: the teleservice prepares its PDF or CMS and finishes it) goes
// the same way, steps 1, 3 and 4, with no fast path: getSigningCertificate() asks
// the professional, on the bridge's page, to let this site have the certificate of
// the card's signature key; sign({hash, documentName}) has the bridge's page show
// this site, the document's name and its SHA-256 hash, and take the PIN for this
// signature alone; the card's non-repudiation key signs. The answer is the raw
// RSASSA-PKCS1-v1_5 signature over the hash and the signing certificate, each in
// base64url, for the teleservice's server to put in its document.
//
//   signButton.addEventListener("click", async () => {
//     const prepared = post("/documents/42/prepare", {}); // the server's hash, in base64url
//     const { signature, certificate } = await bridge.sign({
//       hash: () => prepared.then((r) => r.hash), documentName: "Ordonnance du 2 décembre.pdf" });
//     await post("/documents/42/finish", { signature, certificate });
//   });
//
// What the teleservice's pages must allow: the bridge's address in the
// Content-Security-Policy's connect-src (fetch, EventSource). Nothing else: the
// popup is navigated, no form is posted, and the Referrer-Policy does not matter.
//
// Messages: every error has a stable `code` and a `message` for people, in French
// or English (the `lang` option; else the page's <html lang>; French otherwise).

/** The bridge's address when it runs with its default settings. */
export const DEFAULT_BRIDGE_URL = "http://127.0.0.1:24790";

const CALL_TIMEOUT_MS = 10_000; // an ordinary call to a bridge on this very machine
// While the browser asks the professional whether this site may reach the bridge
// (Local Network Access), the first call waits: as long as a person may take.
const PERMISSION_WAIT_MS = 120_000;
const GIVEN_UP = new Set(["bridge.aborted", "bridge.timeout", "bridge.replaced"]);
const POLL_WAIT_SECONDS = 20; // the bridge holds a poll that long at most (25 s allowed)
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 10) * 1000;
const INTERACTION_LIFETIME_MS = 5 * 60_000; // the bridge forgets a login after 5 minutes
// A site the professional has not approved reads nothing until they answer on the
// bridge's page: it asks again this often (a person takes seconds to type a PIN).
const UNREAD_RETRY_MS = 1_000;
// Once the bridge's page shows in the popup, this page loses its handle on it (COOP:
// popup.closed reads true). Still held this long after the popup was sent there, the
// popup shows something else: the browser's error page of a bridge not running.
const PAGE_SHOWN_MS = 8_000;
// A bridge that answered this site, then stops answering: it stopped, or the login
// expired. Past this delay of silence, login() says so.
const SILENCE_MS = 10_000;
const EVENTS_RETRY_MIN_MS = 1_000; // reconnection back-off of the card event stream
const EVENTS_RETRY_MAX_MS = 60_000;
const POPUP_FEATURES = "popup,width=480,height=640";
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/; // 32 bytes in base64url, as cardauth issues them
// A SHA-256 hash: 32 bytes in base64url, in its one spelling (the last character's
// two unused bits zero), as the bridge takes it.
const SHA256_BASE64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const SHA256_SIZE = 32;
const MAX_DOCUMENT_NAME = 120; // characters (code points), as the bridge counts them
// What a document's name shown on the bridge's page may not hold (Unicode general
// categories): controls, format characters (bidirectional overrides, zero-width),
// surrogates, private use, unassigned, line and paragraph separators.
const HIDING_CHARACTERS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;

/**
 * The messages of this client's own codes, in French and English. The bridge's
 * refusals come with their message from the bridge, in the language asked for.
 * @type {Readonly<Record<string, {fr: string, en: string}>>}
 */
export const MESSAGES = Object.freeze({
  "bridge.unreachable": {
    fr: "Le pont cardauth de votre poste ne répond pas à ce site. Vérifiez qu'il est lancé, puis réessayez.",
    en: "The cardauth bridge on your workstation does not answer this site. Check that it is running, then try again.",
  },
  "bridge.permission_denied": {
    fr: "Votre navigateur interdit à ce site de joindre le pont cardauth de votre poste. Autorisez-le : cliquez sur l'icône à gauche de l'adresse du site, ouvrez les paramètres du site et autorisez l'accès au réseau local, puis rechargez la page.",
    en: "Your browser does not let this site reach the cardauth bridge on your workstation. Allow it: click the icon left of the site's address, open the site settings and allow local network access, then reload the page.",
  },
  "bridge.timeout": {
    fr: "La demande à votre carte (connexion ou signature) n'a pas abouti à temps. Recommencez.",
    en: "The request to your card (login or signature) did not complete in time. Try again.",
  },
  "bridge.popup_blocked": {
    fr: "Votre navigateur a bloqué la fenêtre du pont cardauth (connexion ou signature par carte). Autorisez les fenêtres pop-up pour ce site, ou cliquez de nouveau.",
    en: "Your browser blocked the cardauth bridge's window (card login or signature). Allow pop-ups for this site, or click again.",
  },
  "bridge.aborted": {
    fr: "La demande à votre carte (connexion ou signature) a été annulée.",
    en: "The request to your card (login or signature) was cancelled.",
  },
  "bridge.replaced": {
    fr: "Une nouvelle demande à votre carte a été faite : celle-ci est abandonnée.",
    en: "A new request to your card was made: this one is given up.",
  },
  "bridge.interaction_unknown": {
    fr: "Cette demande à votre carte n'attend plus (elle a expiré, ou le pont s'est arrêté). Recommencez.",
    en: "This request to your card is no longer waiting (it expired, or the bridge stopped). Try again.",
  },
  "bridge.declined": {
    fr: "Vous avez refusé l'accès de ce site à votre carte.",
    en: "You refused this site access to your card.",
  },
  "bridge.failed": {
    fr: "La demande à votre carte (connexion ou signature) a échoué. Recommencez.",
    en: "The request to your card (login or signature) failed. Try again.",
  },
  "bridge.protocol": {
    fr: "Le pont cardauth a répondu de façon inattendue : mettez à jour le pont ou ce site.",
    en: "The cardauth bridge answered in an unexpected way: update the bridge or this site.",
  },
  "challenge.malformed": {
    fr: "Le site a fourni un défi de connexion invalide : rechargez la page et recommencez.",
    en: "The site gave an invalid login challenge: reload the page and try again.",
  },
  "document.hash_malformed": {
    fr: "Le site a fourni une empreinte de document invalide (32 octets en base64url attendus) : rien n'a été signé. Recommencez depuis le site.",
    en: "The site gave an invalid document fingerprint (32 bytes in base64url expected): nothing was signed. Start again from the site.",
  },
  "document.hash_algorithm": {
    fr: "Le site demande une signature sur une empreinte qui n'est pas SHA-256, la seule que signe la carte : rien n'a été signé.",
    en: "The site asks for a signature over a fingerprint that is not SHA-256, the only one the card signs: nothing was signed.",
  },
  "document.certificate_malformed": {
    fr: "Le site a fourni un certificat de signature invalide (DER en base64url attendu) : rien n'a été signé.",
    en: "The site gave an invalid signing certificate (DER in base64url expected): nothing was signed.",
  },
  "document.name_invalid": {
    fr: "Le site a fourni un nom de document vide, trop long (120 caractères au plus) ou contenant des caractères de contrôle ou invisibles : rien n'a été signé.",
    en: "The site gave a document name that is empty, too long (120 characters at most) or holds control or invisible characters: nothing was signed.",
  },
});

/**
 * `code`'s message in `lang` ("fr" or "en"): this client's own, or `fallback`
 * (the bridge's), or, for a code this client does not know and no fallback, the
 * message of "bridge.failed".
 * @param {string} code
 * @param {"fr" | "en"} lang
 * @param {string} [fallback]
 * @returns {string}
 */
export function describe(code, lang, fallback) {
  const own = Object.hasOwn(MESSAGES, code) ? MESSAGES[code] : undefined;
  if (own !== undefined && fallback === undefined) return own[lang];
  return fallback ?? MESSAGES["bridge.failed"][lang];
}

/**
 * A refusal or failure, with a stable `code` and a `message` for people (in the
 * client's language): the bridge's own code when it gave one ("bridge.declined",
 * "pin.blocked", "card.not_present", "card.expired", "bridge.rate_limited",
 * "challenge.malformed"...), or one of this client's:
 *
 * - "bridge.unreachable": no answer from the bridge for this site (not running,
 *   or, for status() and events, this site not approved yet: a browser cannot
 *   tell the two apart, by the bridge's design);
 * - "bridge.permission_denied": the browser does not let this site reach the
 *   bridge (Local Network Access refused); the message says how to allow it;
 * - "bridge.timeout": the bridge did not answer in time, or the login was not
 *   finished before it expired;
 * - "bridge.popup_blocked": the browser blocked the bridge's window (call login()
 *   from a click handler, or let the user click again);
 * - "bridge.aborted": the caller's AbortSignal fired;
 * - "bridge.replaced": login() was called again before this one ended (the newer
 *   call goes on);
 * - "bridge.interaction_unknown": the bridge no longer knows the login;
 * - "bridge.failed": the login failed on the bridge without a more precise code;
 * - "bridge.protocol": the bridge answered something this client does not understand;
 * - "document.hash_malformed", "document.hash_algorithm", "document.name_invalid",
 *   "document.certificate_malformed": sign() was given a hash that is not 32 bytes
 *   (or their base64url), an algorithm other than SHA-256, a document name the
 *   bridge's page would refuse to show, or a certificate that is not base64url.
 *
 * sign() and getSigningCertificate() fail with the same codes as login() (but
 * "challenge.malformed"); "bridge.declined" when the professional refuses.
 */
export class CardAuthBridgeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, cause?: unknown}} [details]
   */
  constructor(code, message, { status, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "CardAuthBridgeError";
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} the HTTP status, when the bridge answered one */
    this.status = status;
  }
}

/**
 * A card event. `card` names this insertion of the card (random, nothing of the
 * card's): after a reconnection, a "present" card with another `card` than the
 * one logged in with was swapped meanwhile.
 * @typedef {{slot: string, state: "present" | "inserted" | "removed",
 *            kind: "cps" | "vitale" | "unknown" | "unreadable", card: string}} CardEvent
 */

/**
 * @typedef {{service: string, version: string, api: number, readers: string[],
 *            pin_fresh: boolean}} BridgeStatus
 */

/**
 * A SHA-256 hash to sign: its 32 bytes, or the same in base64url.
 * @typedef {ArrayBuffer | ArrayBufferView | string} HashInput
 */

export class CardAuthBridge {
  /** @type {Set<(event: CardEvent) => void>} */
  #listeners = new Set();
  /** @type {Set<(error: CardAuthBridgeError) => void>} */
  #errorListeners = new Set();
  /** @type {EventSource | null} */
  #events = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #reconnect = null;
  #retryDelay = EVENTS_RETRY_MIN_MS;
  /** @type {AbortController | null} the login under way, to give it up for a newer one */
  #current = null;

  /**
   * @param {{url?: string, lang?: "fr" | "en"}} [options] url: the bridge's address (no
   *   trailing slash needed); lang: the language of messages (else the page's).
   */
  constructor({ url = DEFAULT_BRIDGE_URL, lang } = {}) {
    /** @type {string} */
    this.url = url.replace(/\/+$/, "");
    /** @type {"fr" | "en"} */
    this.lang = (lang ?? globalThis.document?.documentElement?.lang ?? "").startsWith("en")
      ? "en"
      : "fr";
  }

  /**
   * Whether the bridge answers this site now. A site that the professional has not
   * approved yet gets false even when the bridge runs (it refuses such sites
   * without CORS, and marks its answers Cross-Origin-Resource-Policy: same-origin,
   * so that no site can find out silently that a bridge is there): login() still
   * works for it, since the approval is asked for on the bridge's page.
   * @returns {Promise<boolean>}
   */
  async available() {
    try {
      await this.status();
      return true;
    } catch (error) {
      if (error instanceof CardAuthBridgeError) return false;
      throw error;
    }
  }

  /**
   * The bridge's status, for an approved site.
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<BridgeStatus>}
   */
  async status({ signal } = {}) {
    return /** @type {any} */ (await this.#call("/v1/status", { signal }));
  }

  /**
   * Log in with the card: resolves to an assertion (a compact JWS) for this page's
   * origin and `challenge`, to send to the teleservice's server, which verifies it.
   * Call it from a click handler (see the top of this file). Called again before it
   * ended, the earlier call fails with "bridge.replaced" and the newer one goes on.
   *
   * @param {string | (() => string | Promise<string>)} challenge the server's
   *   challenge, or a function that fetches it: it is called after the popup is
   *   opened, so that fetching the challenge does not use up the click's gesture.
   * @param {{vitale?: boolean, signal?: AbortSignal}} [options] vitale: the
   *   patient's Vitale card co-signs; signal: give up (the bridge's page then says
   *   the site gave the login up).
   * @returns {Promise<string>}
   */
  async login(challenge, { vitale = false, signal } = {}) {
    return this.#interact(signal, async ({ popup, requestId, own }) => {
      const value = typeof challenge === "function" ? await challenge() : challenge;
      this.#throwIfAborted(own);
      if (typeof value !== "string" || !CHALLENGE.test(value)) throw this.#fail("challenge.malformed");
      const waitForPermission = (await this.#localNetworkAccess()) === "prompt";
      const fast = await this.#tryFastPath(value, vitale, own, waitForPermission);
      if (fast !== null) return fast;
      const answer = await this.#onBridgePage(popup, requestId, { challenge: value, vitale }, own);
      if (typeof answer.assertion === "string") return answer.assertion;
      throw this.#fail("bridge.protocol");
    });
  }

  /**
   * The certificate of the card's signature key (non-repudiation), for a site that
   * signs documents: the bridge's page asks the professional whether this site may
   * have it (every time; no PIN: the certificate is public data of the card). Call
   * it from a click handler: it opens the bridge's window.
   *
   * @param {{signal?: AbortSignal}} [options] signal: give up.
   * @returns {Promise<{certificate: string}>} the certificate, DER in base64url.
   */
  async getSigningCertificate({ signal } = {}) {
    return this.#interact(signal, async ({ popup, requestId, own }) => {
      const answer = await this.#onBridgePage(
        popup,
        requestId,
        { kind: "signing_certificate" },
        own,
        await this.#permissionWait(),
      );
      if (!isBase64url(answer.certificate)) throw this.#fail("bridge.protocol");
      return { certificate: answer.certificate };
    });
  }

  /**
   * Have the professional sign a document the site prepared (deferred signing): the
   * site computes the SHA-256 hash of what is to be signed (a PDF's byte range, a
   * CMS's signed attributes), the bridge's page shows the site, `documentName` and
   * the hash, and the professional types the PIN for this signature (on the
   * bridge's page or the reader's keypad, never on this page). The card signs with
   * its non-repudiation key. Call it from a click handler: it opens the bridge's
   * window. Called again (or login()) before it ended, this call fails with
   * "bridge.replaced".
   *
   * @param {{hash: HashInput | (() => HashInput | Promise<HashInput>),
   *          documentName: string, certificate?: string, hashAlgorithm?: "SHA-256",
   *          signal?: AbortSignal}} request
   *   hash: the 32 bytes of the SHA-256 hash (an ArrayBuffer, as crypto.subtle.digest
   *   gives it, or a typed array), or the same in base64url, or a function that
   *   fetches it (called after the window is opened, so that asking the server does
   *   not use up the click's gesture); documentName: shown on the bridge's page, 1 to
   *   120 characters, none of them control or invisible characters; certificate:
   *   the signing certificate the document was prepared for (as
   *   getSigningCertificate() gave it), so that no other card signs it.
   * @returns {Promise<{signature: string, signatureAlgorithm: "RS256", certificate: string}>}
   *   signature: the raw RSASSA-PKCS1-v1_5 signature over the hash (base64url), to
   *   put in the site's PDF or CMS; certificate: the signing certificate (DER, in
   *   base64url).
   */
  async sign(
    { hash, documentName, certificate, hashAlgorithm = "SHA-256", signal } = /** @type {any} */ ({}),
  ) {
    // What can be checked at once is, before any window opens (and without giving
    // up a request under way).
    if (hashAlgorithm !== "SHA-256") throw this.#fail("document.hash_algorithm");
    if (!validDocumentName(documentName)) throw this.#fail("document.name_invalid");
    if (certificate !== undefined && !isBase64url(certificate)) {
      throw this.#fail("document.certificate_malformed");
    }
    const given = typeof hash === "function" ? null : hashText(hash);
    if (typeof hash !== "function" && given === null) throw this.#fail("document.hash_malformed");
    return this.#interact(signal, async ({ popup, requestId, own }) => {
      const encoded = given ?? hashText(await hash());
      this.#throwIfAborted(own);
      if (encoded === null) throw this.#fail("document.hash_malformed");
      const body = {
        kind: "signature",
        hash: encoded,
        hash_algorithm: hashAlgorithm,
        document_name: documentName,
        ...(certificate === undefined ? {} : { certificate }),
      };
      const wait = await this.#permissionWait();
      const answer = await this.#onBridgePage(popup, requestId, body, own, wait);
      if (
        !isBase64url(answer.signature) ||
        answer.signature_algorithm !== "RS256" ||
        !isBase64url(answer.certificate)
      ) {
        throw this.#fail("bridge.protocol");
      }
      return {
        signature: answer.signature,
        signatureAlgorithm: answer.signature_algorithm,
        certificate: answer.certificate,
      };
    });
  }

  /**
   * The professional logged out of this site: the card forgets the verified PIN,
   * so that the next login asks for it on the bridge's page. Resolves to whether
   * the bridge confirmed it (false when it could not be reached); never throws.
   * @returns {Promise<boolean>}
   */
  async logout() {
    this.#current?.abort(this.#fail("bridge.aborted"));
    try {
      await this.#call("/v1/logout", { body: {} });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Be told of card insertions and removals (approved sites only). The callback
   * first gets a "present" event for each card in the readers, then "inserted" and
   * "removed" events. The stream reconnects by itself (and then sends the "present"
   * events again). End the session on a "removed" event of the "cps" card.
   *
   * A removal that happens while the stream is down (the bridge restarted, the
   * connection dropped) is not told: `onError` is called when the stream fails, so
   * that a page can check again (status(), or a new login) if it must.
   *
   * @param {(event: CardEvent) => void} callback
   * @param {{onError?: (error: CardAuthBridgeError) => void}} [options]
   * @returns {() => void} stops this callback (the stream closes with the last one)
   */
  onCardEvent(callback, { onError } = {}) {
    this.#listeners.add(callback);
    if (onError) this.#errorListeners.add(onError);
    if (this.#events === null && this.#reconnect === null) this.#openEvents();
    return () => {
      this.#listeners.delete(callback);
      if (onError) this.#errorListeners.delete(onError);
      if (this.#listeners.size === 0) this.#closeEvents();
    };
  }

  // -- an interaction with the card, step by step ----------------------------------------

  /**
   * What every request to the card shares: the earlier one given up ("bridge.replaced"),
   * the caller's AbortSignal followed, an empty popup opened at once (step 1), and
   * the popup closed at the end if it still shows something of this page's.
   * @template T
   * @param {AbortSignal | undefined} signal
   * @param {(context: {popup: Window | null, requestId: string, own: AbortSignal}) => Promise<T>} run
   * @returns {Promise<T>}
   */
  async #interact(signal, run) {
    if (signal?.aborted) throw this.#fail("bridge.aborted", { cause: signal.reason });
    this.#current?.abort(this.#fail("bridge.replaced"));
    const current = new AbortController();
    this.#current = current;
    const forward = () => current.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    // Synchronously, while the click is still a user gesture: an empty window, named
    // for this request alone (an earlier request's window is closed by that request).
    const requestId = randomId();
    const popup = window.open("about:blank", `cardauth-${requestId.slice(0, 16)}`, POPUP_FEATURES);
    try {
      this.#throwIfAborted(current.signal);
      return await run({ popup, requestId, own: current.signal });
    } finally {
      signal?.removeEventListener("abort", forward);
      if (this.#current === current) this.#current = null;
      // Closes the empty window of the fast path, or a window still showing an
      // error page. Once the bridge's page is there, this handle no longer reaches
      // the window (COOP): the bridge's page closes itself when it is over.
      popup?.close();
    }
  }

  /**
   * Steps 3 and 4: open the interaction on the bridge (`body`: what is asked), send
   * the popup to the bridge's page for it, and collect the outcome: the answer of a
   * finished interaction whose status is "ok".
   * @param {Window | null} popup
   * @param {string} requestId
   * @param {object} body
   * @param {AbortSignal} own
   * @param {number} [timeout] of the first call (longer while the browser asks for
   *   the Local Network Access permission)
   * @returns {Promise<any>}
   */
  async #onBridgePage(popup, requestId, body, own, timeout = CALL_TIMEOUT_MS) {
    if (popup === null) throw this.#fail("bridge.popup_blocked");
    const pageId = randomId();
    const readable = await this.#open(requestId, pageId, body, own, timeout);
    // Navigated, never posted to: a navigation carries nothing a site can forge,
    // and Local Network Access does not stop it.
    popup.location.replace(`${this.url}/interaction/${pageId}?lang=${this.lang}`);
    try {
      return await this.#collect(requestId, readable ? null : popup, own);
    } catch (error) {
      // Given up here (aborted, timed out, replaced): the bridge stops waiting
      // too, and its page says so. Best effort: it expires anyway.
      if (error instanceof CardAuthBridgeError && GIVEN_UP.has(error.code)) {
        this.#call(`/v1/interactions/${requestId}`, { method: "DELETE" }).catch(() => {});
      }
      throw error;
    }
  }

  /** How long the first call to the bridge may take: longer while the browser asks
   * the professional for the Local Network Access permission. */
  async #permissionWait() {
    return (await this.#localNetworkAccess()) === "prompt" ? PERMISSION_WAIT_MS : CALL_TIMEOUT_MS;
  }

  // -- a login, step by step ---------------------------------------------------------

  /**
   * Step 2: POST /v1/authenticate. The assertion, or null when the professional is
   * needed on the bridge's page.
   * @returns {Promise<string | null>}
   */
  async #tryFastPath(challenge, vitale, signal, waitForPermission) {
    let answer;
    try {
      answer = await this.#call("/v1/authenticate", {
        signal,
        body: { challenge, vitale },
        timeout: waitForPermission ? PERMISSION_WAIT_MS : CALL_TIMEOUT_MS,
      });
    } catch (error) {
      // Not approved (no CORS), or no bridge: only the bridge's page can tell.
      if (error instanceof CardAuthBridgeError && error.code === "bridge.unreachable") {
        await this.#throwIfNoAccess(error);
        return null;
      }
      throw error;
    }
    if (answer.status === "ok" && typeof answer.assertion === "string") return answer.assertion;
    if (answer.status === "interaction_required") return null;
    throw this.#fail("bridge.protocol");
  }

  /**
   * Step 3: POST /v1/interactions. Whether this site reads the bridge's answers
   * (an approved site does; another one reads nothing until the professional has
   * answered on the bridge's page).
   * @returns {Promise<boolean>}
   */
  async #open(requestId, pageId, body, signal, timeout) {
    try {
      await this.#call("/v1/interactions", {
        signal,
        body: { request_id: requestId, page_id: pageId, ...body },
        timeout,
      });
      return true;
    } catch (error) {
      if (!(error instanceof CardAuthBridgeError) || error.code !== "bridge.unreachable") {
        throw error;
      }
      await this.#throwIfNoAccess(error);
      return false;
    }
  }

  /**
   * Step 4: GET /v1/interactions/{request_id} until the professional has answered
   * on the bridge's page (a long poll for a site that reads the answers). `popup`:
   * for a site that reads nothing yet, the window sent to the bridge's page.
   * Resolves to the answer whose status is "ok" (what it carries depends on what
   * was asked).
   * @param {string} requestId
   * @param {Window | null} popup
   * @param {AbortSignal} signal
   * @returns {Promise<any>}
   */
  async #collect(requestId, popup, signal) {
    const readable = popup === null;
    const sent = Date.now();
    const deadline = sent + INTERACTION_LIFETIME_MS + POLL_TIMEOUT_MS;
    const path = `/v1/interactions/${requestId}?wait=${POLL_WAIT_SECONDS}`;
    let heard = Date.now(); // the bridge last answered this site
    for (;;) {
      this.#throwIfAborted(signal);
      if (Date.now() > deadline) throw this.#fail("bridge.timeout");
      let answer;
      try {
        answer = await this.#call(path, { signal, timeout: POLL_TIMEOUT_MS });
      } catch (error) {
        if (!(error instanceof CardAuthBridgeError) || error.code !== "bridge.unreachable") {
          throw error;
        }
        // Unread: the professional has not answered yet (a site not approved), or
        // the bridge went away (a site that read it until now), or was never there
        // (the popup never showed the bridge's page).
        if (readable && Date.now() - heard > SILENCE_MS) {
          throw this.#fail("bridge.interaction_unknown", { cause: error });
        }
        if (!readable && !popup.closed && Date.now() - sent > PAGE_SHOWN_MS) {
          throw this.#fail("bridge.unreachable", { cause: error });
        }
        await sleep(UNREAD_RETRY_MS, signal, () => this.#throwIfAborted(signal));
        continue;
      }
      heard = Date.now();
      switch (answer.status) {
        case "pending":
          continue;
        case "ok":
          return answer;
        case "declined":
          throw this.#outcomeError(answer, "bridge.declined");
        case "failed":
          throw this.#outcomeError(answer, "bridge.failed");
        default:
          break;
      }
      throw this.#fail("bridge.protocol");
    }
  }

  /**
   * After a call the browser did not let through: "bridge.permission_denied" when
   * Local Network Access is refused to this site, else nothing (the bridge does
   * not run, or does not answer this site).
   * @param {CardAuthBridgeError} unreachable
   */
  async #throwIfNoAccess(unreachable) {
    if ((await this.#localNetworkAccess()) === "denied") {
      throw this.#fail("bridge.permission_denied", { cause: unreachable });
    }
  }

  /**
   * This site's Local Network Access permission for the loopback address space:
   * "granted", "denied", "prompt" (the browser will ask), or "unknown" (a browser
   * without it: nothing to ask).
   * @returns {Promise<string>}
   */
  async #localNetworkAccess() {
    // Recent Chromium: "loopback-network"; its first versions: "local-network-access".
    for (const name of ["loopback-network", "local-network-access"]) {
      try {
        const permission = await navigator.permissions.query(
          /** @type {PermissionDescriptor} */ ({ name }),
        );
        return permission.state;
      } catch {
        // not a permission this browser knows: try the next name
      }
    }
    return "unknown";
  }

  /** The error of a finished login that did not succeed, with the bridge's code. */
  #outcomeError(answer, fallbackCode) {
    const code = typeof answer?.error?.code === "string" ? answer.error.code : fallbackCode;
    const message = typeof answer?.error?.message === "string" ? answer.error.message : undefined;
    return new CardAuthBridgeError(code, describe(code, this.lang, message));
  }

  /**
   * An error of this client's, with its message in the client's language.
   * @param {string} code
   * @param {{status?: number, cause?: unknown}} [details]
   */
  #fail(code, details) {
    return new CardAuthBridgeError(code, describe(code, this.lang), details);
  }

  /** @param {AbortSignal | undefined} signal */
  #throwIfAborted(signal) {
    if (!signal?.aborted) return;
    if (signal.reason instanceof CardAuthBridgeError) throw signal.reason;
    throw this.#fail("bridge.aborted", { cause: signal.reason });
  }

  // -- card events ---------------------------------------------------------------------

  #openEvents() {
    this.#reconnect = null;
    const source = new EventSource(`${this.url}/v1/events`);
    this.#events = source;
    source.addEventListener("open", () => {
      this.#retryDelay = EVENTS_RETRY_MIN_MS;
    });
    source.addEventListener("card", (message) => {
      let event;
      try {
        event = JSON.parse(/** @type {MessageEvent} */ (message).data);
      } catch {
        return; // not ours to crash on
      }
      for (const listener of [...this.#listeners]) {
        try {
          listener(event);
        } catch (error) {
          reportError(error); // one failing listener does not silence the others
        }
      }
    });
    source.addEventListener("error", () => {
      // The stream was interrupted: the bridge is not running, or this site is not
      // approved (a browser cannot tell the two apart).
      const error = this.#fail("bridge.unreachable");
      for (const listener of [...this.#errorListeners]) {
        try {
          listener(error);
        } catch (problem) {
          reportError(problem);
        }
      }
      // A dropped connection is retried by the browser itself (readyState
      // CONNECTING). A refused one (no bridge at first, an HTTP error such as 403
      // for a site not approved, or 503 when too many streams are open) closes
      // the EventSource for good: open a new one later, less and less often.
      if (source.readyState === EventSource.CLOSED && this.#events === source) {
        this.#events = null;
        this.#reconnect = setTimeout(() => this.#openEvents(), this.#retryDelay);
        this.#retryDelay = Math.min(this.#retryDelay * 2, EVENTS_RETRY_MAX_MS);
      }
    });
  }

  #closeEvents() {
    if (this.#reconnect !== null) clearTimeout(this.#reconnect);
    this.#reconnect = null;
    this.#events?.close();
    this.#events = null;
    this.#retryDelay = EVENTS_RETRY_MIN_MS;
  }

  // -- HTTP ----------------------------------------------------------------------------

  /**
   * A call to the bridge's API: GET, or POST of a JSON body. Resolves to the JSON
   * answer of a 2xx; a refusal becomes a CardAuthBridgeError with the bridge's code
   * and message (in the client's language).
   * @param {string} path
   * @param {{signal?: AbortSignal, body?: object, timeout?: number, method?: string}} options
   * @returns {Promise<any>}
   */
  async #call(path, { signal, body, timeout = CALL_TIMEOUT_MS, method }) {
    this.#throwIfAborted(signal);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const forward = () => controller.abort();
    signal?.addEventListener("abort", forward, { once: true });
    /** @type {RequestInit & {targetAddressSpace?: string}} */
    const init = {
      signal: controller.signal,
      credentials: "omit", // the bridge knows sites by their Origin, never by cookies
      cache: "no-store",
      referrerPolicy: "no-referrer",
    };
    if (new URL(this.url).hostname === "localhost") {
      // A name, not an address: Chromium needs to know it is loopback before it
      // connects (Local Network Access, mixed content from an https page).
      init.targetAddressSpace = "loopback";
    }
    if (body !== undefined) {
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    } else if (method !== undefined) {
      init.method = method;
    }
    const separator = path.includes("?") ? "&" : "?";
    const url = `${this.url}${path}${separator}lang=${this.lang}`;
    try {
      let response;
      try {
        response = await fetch(url, init);
      } catch (error) {
        this.#throwIfAborted(signal);
        if (timedOut) throw this.#fail("bridge.timeout");
        throw this.#fail("bridge.unreachable", { cause: error });
      }
      let answer;
      try {
        answer = await response.json();
      } catch (error) {
        this.#throwIfAborted(signal);
        if (timedOut) throw this.#fail("bridge.timeout");
        throw this.#fail("bridge.protocol", { status: response.status, cause: error });
      }
      if (!response.ok) {
        const code =
          typeof answer?.error?.code === "string" ? answer.error.code : "bridge.protocol";
        const message =
          typeof answer?.error?.message === "string" ? answer.error.message : undefined;
        throw new CardAuthBridgeError(code, describe(code, this.lang, message), {
          status: response.status,
        });
      }
      if (answer === null || typeof answer !== "object") throw this.#fail("bridge.protocol");
      return answer;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
  }
}

// -- helpers -------------------------------------------------------------------------

/** 32 random bytes in base64url: an identifier that only this page knows. */
function randomId() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** @param {Uint8Array} bytes @returns {string} base64url without padding */
function base64url(bytes) {
  const text = btoa(String.fromCharCode(...bytes));
  return text.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** @param {unknown} value @returns {value is string} a non-empty base64url text */
function isBase64url(value) {
  return typeof value === "string" && /^[A-Za-z0-9_-]+$/.test(value);
}

/**
 * A SHA-256 hash as the bridge takes it (base64url), from its 32 bytes or from the
 * same in base64url; null when it is neither.
 * @param {unknown} value
 * @returns {string | null}
 */
function hashText(value) {
  if (typeof value === "string") return SHA256_BASE64URL.test(value) ? value : null;
  let bytes = null;
  if (value instanceof ArrayBuffer) bytes = new Uint8Array(value);
  else if (ArrayBuffer.isView(value)) {
    bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  return bytes !== null && bytes.length === SHA256_SIZE ? base64url(bytes) : null;
}

/**
 * Whether `name` may be shown on the bridge's page as a document's name (the
 * bridge's own rule: the site learns at once, not after the professional's answer).
 * @param {unknown} name
 * @returns {boolean}
 */
function validDocumentName(name) {
  return (
    typeof name === "string" &&
    /\S/u.test(name) &&
    [...name].length <= MAX_DOCUMENT_NAME &&
    !HIDING_CHARACTERS.test(name)
  );
}

/** Wait `ms`, or less if `signal` aborts (then `onAbort` throws). */
function sleep(ms, signal, onAbort) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      done();
      try {
        onAbort();
        resolve(undefined);
      } catch (error) {
        reject(error);
      }
    };
    const timer = setTimeout(() => {
      done();
      resolve(undefined);
    }, ms);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/** Report an error thrown by a page's callback (in the console, to window.onerror)
 * without stopping the other callbacks. */
function reportError(error) {
  if (typeof globalThis.reportError === "function") {
    globalThis.reportError(error);
    return;
  }
  setTimeout(() => {
    throw error;
  });
}
