// The read API over fetch, with the bearer token; failures become ApiError with the
// server's reason, so panels show a message instead of going blank.

/** A refused or failed request: `status` 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(status, reason, retryAfter = null) {
    super(reason);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** What to tell the user about `error`. */
export function explain(error) {
  if (!(error instanceof ApiError)) return `error: ${error.message || error}`;
  const reason = error.message ? `: ${error.message}` : "";
  switch (error.status) {
    case 0: return `the API cannot be reached${reason}`;
    case 401: return `not signed in (401)${reason} — give a token`;
    case 403: return `access denied (403)${reason}`;
    case 429: return `rate limited (429), retry in ${error.retryAfter ?? "a few"} s`;
    case 503: return `a store is unavailable (503)${reason}`;
    default: return `request failed (${error.status})${reason}`;
  }
}

/** The reason a refusal carries (FastAPI's `detail`, as text). */
async function reasonOf(response) {
  try {
    const body = await response.json();
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return detail ? JSON.stringify(detail) : "";
  } catch {
    return response.statusText;
  }
}

/** A client of the API under `base` that authenticates with `token()`. */
export class ApiClient {
  constructor(token, base = "/api/v1", onRefused = () => {}) {
    this.token = token;
    this.base = base;
    this.onRefused = onRefused;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token()}`, ...extra };
  }

  /** `path` with the non-empty `params` as its query string. */
  url(path, params = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    const text = query.toString();
    return `${this.base}${path}${text ? `?${text}` : ""}`;
  }

  /** The JSON body of GET `path`; throws ApiError on a refusal. */
  async get(path, params = {}, init = {}) {
    let response;
    try {
      response = await fetch(this.url(path, params), { ...init, headers: this.headers() });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, error.message);
    }
    await this.check(response);
    return response.json();
  }

  /** Throw ApiError for a response that is not 2xx (telling `onRefused` of 401/403/429). */
  async check(response) {
    if (response.ok) return;
    const error = new ApiError(response.status, await reasonOf(response),
      response.headers.get("Retry-After"));
    if ([401, 403, 429].includes(response.status)) this.onRefused(error);
    throw error;
  }
}
