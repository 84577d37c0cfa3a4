// cardauth.js: the web page's side of the cardauth bridge (cardauth-bridge), the
// local program that lets a health professional log in to a teleservice with the
// CPS card. An ES module with no dependencies and no build step.
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
//     } catch (error) { showProblem(error.code); } // "bridge.declined", "pin.blocked"...
//   });
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
//    exactly like a bridge that is not running), login() submits a form into the
//    popup: POST /interaction with the challenge and a random request_id. The
//    browser sets the Origin header of that navigation: the bridge binds that
//    origin, never a value the page chose, into what the card signs. The bridge
//    then shows its own page in the popup, where the professional sees which site
//    asks, types the PIN and allows or refuses. The PIN is typed there (or on the
//    reader's keypad): it never reaches this page, nor this script.
// 4. login() collects the outcome by long polling GET /v1/interactions/{request_id}.
//
// The bridge's page sets Cross-Origin-Opener-Policy: same-origin, so this page
// loses its handle on the popup as soon as the bridge's page loads there
// (popup.closed may read true although the window is open): the outcome comes
// from the bridge, never from watching the window. If the professional just
// closes the window, the login stays pending on the bridge until it expires (5
// minutes): pass an AbortSignal to login() to give up sooner.
//
// What the teleservice's pages must allow:
// - Content-Security-Policy: the bridge's address in connect-src (fetch,
//   EventSource) and in form-action (the form of step 3);
// - Referrer-Policy: not "no-referrer" nor "same-origin". With those, a browser
//   sends "Origin: null" on the form POST of step 3, and the bridge refuses a
//   login that does not say which site it is for (its page in the popup says so;
//   login() fails once START_GRACE_MS has passed, with "bridge.unreachable" or
//   "bridge.interaction_unknown"). The browsers' default policy,
//   strict-origin-when-cross-origin, is right.

/** The bridge's address when it runs with its default settings. */
export const DEFAULT_BRIDGE_URL = "http://127.0.0.1:24790";

const CALL_TIMEOUT_MS = 10_000; // an ordinary call to a bridge on this very machine
const GIVEN_UP = new Set(["bridge.aborted", "bridge.timeout"]); // the page stopped waiting
const POLL_WAIT_SECONDS = 20; // the bridge holds a poll that long at most (25 s allowed)
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 10) * 1000;
const INTERACTION_LIFETIME_MS = 5 * 60_000; // the bridge forgets a login after 5 minutes
// After the form is submitted, the bridge may not know the request_id yet: polls
// fail until the popup's navigation reaches it. Past this delay, a failing poll
// means the bridge is not there (or refused the form: its page in the popup says why).
const START_GRACE_MS = 10_000;
const RETRY_DELAY_MS = 250;
const EVENTS_RETRY_MIN_MS = 1_000; // reconnection back-off of the card event stream
const EVENTS_RETRY_MAX_MS = 60_000;
const POPUP_FEATURES = "popup,width=480,height=640";
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/; // 32 bytes in base64url, as cardauth issues them

/**
 * A refusal or failure, with a stable `code`: the bridge's own code when it gave
 * one ("bridge.declined", "pin.blocked", "card.not_present", "bridge.rate_limited",
 * "challenge.malformed"...), or one of this client's:
 *
 * - "bridge.unreachable": no answer from the bridge for this site (not running,
 *   or, for status() and events, this site not approved yet: a browser cannot
 *   tell the two apart, by the bridge's design);
 * - "bridge.timeout": the bridge did not answer in time, or the login was not
 *   finished before it expired;
 * - "bridge.popup_blocked": the browser blocked the bridge's window (call login()
 *   from a click handler, or let the user click again);
 * - "bridge.aborted": the caller's AbortSignal fired;
 * - "bridge.login_in_progress": login() was called again before the first one ended;
 * - "bridge.failed": the login failed on the bridge without a more precise code;
 * - "bridge.protocol": the bridge answered something this client does not understand.
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
  #loginUnderWay = false;

  /** @param {{url?: string}} [options] the bridge's address (no trailing slash needed) */
  constructor({ url = DEFAULT_BRIDGE_URL } = {}) {
    /** @type {string} */
    this.url = url.replace(/\/+$/, "");
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
   * Call it from a click handler (see the top of this file).
   *
   * @param {string | (() => string | Promise<string>)} challenge the server's
   *   challenge, or a function that fetches it: it is called after the popup is
   *   opened, so that fetching the challenge does not use up the click's gesture.
   * @param {{vitale?: boolean, signal?: AbortSignal}} [options] vitale: the
   *   patient's Vitale card co-signs; signal: give up (the bridge's window stays
   *   open until the professional closes it or the login expires).
   * @returns {Promise<string>}
   */
  async login(challenge, { vitale = false, signal } = {}) {
    if (this.#loginUnderWay) {
      throw new CardAuthBridgeError(
        "bridge.login_in_progress",
        "a card login is already under way",
      );
    }
    this.#loginUnderWay = true;
    // Synchronously, while the click is still a user gesture: about:blank in a
    // window of our own naming, into which the form of step 3 is submitted.
    const requestId = randomId();
    const windowName = `cardauth-${requestId.slice(0, 16)}`;
    const popup = window.open("about:blank", windowName, POPUP_FEATURES);
    try {
      throwIfAborted(signal);
      const value = typeof challenge === "function" ? await challenge() : challenge;
      if (typeof value !== "string" || !CHALLENGE.test(value)) {
        throw new CardAuthBridgeError(
          "challenge.malformed",
          "a challenge is 32 bytes in base64url",
        );
      }
      const fast = await this.#tryFastPath(value, vitale, signal);
      if (fast.assertion !== undefined) return fast.assertion;
      if (popup === null) {
        throw new CardAuthBridgeError(
          "bridge.popup_blocked",
          "the browser blocked the card login window: allow pop-ups for this site, or click again",
        );
      }
      submitForm(fast.interactionUrl ?? `${this.url}/interaction`, windowName, {
        challenge: value,
        vitale: vitale ? "true" : "false",
        request_id: requestId,
      });
      try {
        return await this.#collect(requestId, signal);
      } catch (error) {
        // Given up here (aborted, timed out): the bridge stops waiting too, and its
        // page, if still open, says so. Best effort: the login expires anyway.
        if (error instanceof CardAuthBridgeError && GIVEN_UP.has(error.code)) {
          this.#call(`/v1/interactions/${requestId}`, { method: "DELETE" }).catch(() => {});
        }
        throw error;
      }
    } finally {
      this.#loginUnderWay = false;
      // Closes the empty window of the fast path, or a window still showing an
      // error page. Once the bridge's page is there, this handle no longer reaches
      // the window (COOP): the bridge's page closes itself when the login is over.
      popup?.close();
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

  // -- a login, step by step ---------------------------------------------------------

  /**
   * Step 2: POST /v1/authenticate. An assertion, or where to ask the professional.
   * @returns {Promise<{assertion?: string, interactionUrl?: string}>}
   */
  async #tryFastPath(challenge, vitale, signal) {
    let answer;
    try {
      answer = await this.#call("/v1/authenticate", { signal, body: { challenge, vitale } });
    } catch (error) {
      // Not approved (no CORS), or no bridge: only the bridge's page can tell.
      if (error instanceof CardAuthBridgeError && error.code === "bridge.unreachable") return {};
      throw error;
    }
    if (answer.status === "ok" && typeof answer.assertion === "string") {
      return { assertion: answer.assertion };
    }
    if (answer.status === "interaction_required") {
      // The bridge names its own page; only a page of this bridge's address is used.
      const url =
        typeof answer.url === "string" && answer.url.startsWith(`${this.url}/`)
          ? answer.url
          : undefined;
      return { interactionUrl: url };
    }
    throw new CardAuthBridgeError("bridge.protocol", "unexpected answer to /v1/authenticate");
  }

  /**
   * Step 4: long-poll GET /v1/interactions/{request_id} until the professional has
   * answered on the bridge's page.
   * @returns {Promise<string>}
   */
  async #collect(requestId, signal) {
    const started = Date.now();
    const deadline = started + INTERACTION_LIFETIME_MS + POLL_TIMEOUT_MS;
    let known = false; // the bridge has answered "pending" for this request_id
    const path = `/v1/interactions/${requestId}?wait=${POLL_WAIT_SECONDS}`;
    for (;;) {
      throwIfAborted(signal);
      if (Date.now() > deadline) {
        throw new CardAuthBridgeError("bridge.timeout", "the card login was not finished in time");
      }
      let answer;
      try {
        answer = await this.#call(path, { signal, timeout: POLL_TIMEOUT_MS });
      } catch (error) {
        if (!(error instanceof CardAuthBridgeError)) throw error;
        // Before the popup's form reaches the bridge, it knows no such request:
        // an approved site hears "interaction_unknown", another site gets no CORS.
        const early = !known && Date.now() - started < START_GRACE_MS;
        const notYet =
          error.code === "bridge.unreachable" || error.code === "bridge.interaction_unknown";
        if (early && notYet) {
          await sleep(RETRY_DELAY_MS, signal);
          continue;
        }
        if (known && error.code === "bridge.unreachable") {
          // It was there: the login expired (a site not approved then gets no
          // CORS either), or the bridge stopped.
          throw new CardAuthBridgeError(
            "bridge.interaction_unknown",
            "the card login is no longer waiting",
            { cause: error },
          );
        }
        throw error;
      }
      switch (answer.status) {
        case "pending":
          known = true;
          continue;
        case "ok":
          if (typeof answer.assertion === "string") return answer.assertion;
          break;
        case "declined":
          throw outcomeError(
            answer,
            "bridge.declined",
            "the professional refused this site access to the card",
          );
        case "failed":
          throw outcomeError(answer, "bridge.failed", "the card login failed");
        default:
          break;
      }
      throw new CardAuthBridgeError("bridge.protocol", "unexpected answer to /v1/interactions");
    }
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
      const error = new CardAuthBridgeError(
        "bridge.unreachable",
        "the card event stream was interrupted (bridge not running, or this site not approved)",
      );
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
   * answer of a 2xx; a refusal becomes a CardAuthBridgeError with the bridge's code.
   * @param {string} path
   * @param {{signal?: AbortSignal, body?: object, timeout?: number, method?: string}} options
   * @returns {Promise<any>}
   */
  async #call(path, { signal, body, timeout = CALL_TIMEOUT_MS, method }) {
    throwIfAborted(signal);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const forward = () => controller.abort();
    signal?.addEventListener("abort", forward, { once: true });
    /** @type {RequestInit} */
    const init = {
      signal: controller.signal,
      credentials: "omit", // the bridge knows sites by their Origin, never by cookies
      cache: "no-store",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    } else if (method !== undefined) {
      init.method = method;
    }
    try {
      let response;
      try {
        response = await fetch(`${this.url}${path}`, init);
      } catch (error) {
        throwIfAborted(signal);
        if (timedOut) {
          throw new CardAuthBridgeError("bridge.timeout", "the bridge did not answer in time");
        }
        throw new CardAuthBridgeError(
          "bridge.unreachable",
          "the bridge did not answer this site (not running, or this site not approved yet)",
          { cause: error },
        );
      }
      let answer;
      try {
        answer = await response.json();
      } catch (error) {
        throwIfAborted(signal);
        if (timedOut) {
          throw new CardAuthBridgeError("bridge.timeout", "the bridge did not answer in time");
        }
        throw new CardAuthBridgeError(
          "bridge.protocol",
          `the bridge answered ${response.status} without JSON`,
          { status: response.status, cause: error },
        );
      }
      if (!response.ok) {
        const code =
          typeof answer?.error?.code === "string" ? answer.error.code : "bridge.protocol";
        const message =
          typeof answer?.error?.message === "string"
            ? answer.error.message
            : `HTTP ${response.status}`;
        throw new CardAuthBridgeError(code, message, { status: response.status });
      }
      if (answer === null || typeof answer !== "object") {
        throw new CardAuthBridgeError(
          "bridge.protocol",
          "the bridge's answer is not a JSON object",
        );
      }
      return answer;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
  }
}

// -- helpers -------------------------------------------------------------------------

/** 32 random bytes in base64url: the request_id that only this page knows. */
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const text = btoa(String.fromCharCode(...bytes));
  return text.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A hidden form, POSTed into the window named `target`, then removed. */
function submitForm(action, target, fields) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  form.target = target;
  form.hidden = true;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  try {
    form.submit();
  } finally {
    form.remove();
  }
}

/** The error of a finished login that did not succeed, with the bridge's code. */
function outcomeError(answer, fallbackCode, message) {
  const code = typeof answer?.error?.code === "string" ? answer.error.code : fallbackCode;
  return new CardAuthBridgeError(code, code === fallbackCode ? message : `${message} (${code})`);
}

/** @param {AbortSignal | undefined} signal */
function throwIfAborted(signal) {
  if (signal?.aborted) {
    throw new CardAuthBridgeError("bridge.aborted", "the card login was cancelled", {
      cause: signal.reason,
    });
  }
}

/** Wait `ms`, or less if `signal` aborts (then throws). */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      done();
      try {
        throwIfAborted(signal);
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
