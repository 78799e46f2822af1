/** Thin fetch wrapper: same-origin JSON calls with error messages taken from the API body. */

/** An API failure carrying the server's own message (and the offending field, when named). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field?: string,
  ) {
    super(message);
  }
}

type UnauthorizedHandler = () => void;
let onUnauthorized: UnauthorizedHandler = () => {};

/** Registers what happens when any call answers 401 (the app goes back to the login page). */
export function setUnauthorizedHandler(h: UnauthorizedHandler): void {
  onUnauthorized = h;
}

/** Extracts a human message from the error shapes of the Prometheus, Loki, Alertmanager and platform APIs. */
function messageOf(body: unknown, text: string, status: number): { message: string; field?: string } {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const msg = b.error ?? b.message ?? b.detail;
    if (typeof msg === 'string' && msg) {
      const prefix = typeof b.errorType === 'string' ? `${b.errorType}: ` : '';
      return { message: prefix + msg, field: typeof b.field === 'string' ? b.field : undefined };
    }
  }
  const trimmed = text.trim();
  return { message: trimmed ? `HTTP ${status}: ${trimmed.slice(0, 500)}` : `HTTP ${status}` };
}

/** Performs a request and decodes the JSON answer; throws ApiError on a non-2xx or an error status. */
export async function request<T>(
  method: string,
  url: string,
  body?: unknown,
  opts: { signal?: AbortSignal; form?: boolean; quiet401?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let payload: BodyInit | undefined;
  if (body !== undefined) {
    if (opts.form) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      payload = new URLSearchParams(body as Record<string, string>).toString();
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: payload, credentials: 'same-origin', signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(`network error: ${(e as Error).message}`, 0);
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !opts.quiet401) onUnauthorized();
    const { message, field } = messageOf(json, text, res.status);
    throw new ApiError(message, res.status, field);
  }
  if (json && typeof json === 'object' && (json as { status?: string }).status === 'error') {
    const { message } = messageOf(json, text, res.status);
    throw new ApiError(message, res.status);
  }
  return json as T;
}

export const get = <T>(url: string, signal?: AbortSignal) => request<T>('GET', url, undefined, { signal });
export const post = <T>(url: string, body?: unknown) => request<T>('POST', url, body);
export const put = <T>(url: string, body?: unknown) => request<T>('PUT', url, body);
export const del = <T>(url: string) => request<T>('DELETE', url);

/** Builds `path?k=v&…`, skipping undefined values and repeating array values. */
export function withQuery(path: string, params: Record<string, string | number | string[] | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
