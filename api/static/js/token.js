// The API token: taken from the URL fragment (#token=...), kept in sessionStorage for
// this tab only, and the fragment cleared so it leaves no trace in history or screenshots.

const KEY = "dharma.token";

/** The token from the fragment (then stored, fragment cleared) or from sessionStorage. */
export function takeToken(location = window.location, history = window.history) {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

/** Keep `token` for this tab. */
export function storeToken(token) {
  sessionStorage.setItem(KEY, token);
}

/** Forget the token (it was refused). */
export function forgetToken() {
  sessionStorage.removeItem(KEY);
}
