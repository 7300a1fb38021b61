// The console's one way to the API: openapi-fetch over the types generated from the gateway's merged
// OpenAPI document (scripts/gen_client.sh), with a thin fetch wrapper that adds the access token,
// refreshes it once on a 401 and turns the suite's error shape into ApiError.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

export type Paths = paths;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
}

type TokenListener = (tokens: Tokens | null, reason?: string) => void;

const STORAGE_KEY = "soc.tokens";
let tokens: Tokens | null = readStored();
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<TokenListener>();

function readStored(): Tokens | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  } catch {
    return null;
  }
}

export function getTokens(): Tokens | null {
  return tokens;
}

export function setTokens(next: Tokens | null, reason?: string): void {
  tokens = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ access_token: next.access_token, refresh_token: next.refresh_token }));
  else sessionStorage.removeItem(STORAGE_KEY);
  listeners.forEach((listener) => listener(next, reason));
}

export function onTokens(listener: TokenListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

async function refresh(): Promise<boolean> {
  const current = tokens;
  if (!current) return false;
  const response = await fetch("/auth/token/refresh/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  });
  if (!response.ok) {
    setTokens(null, "expired");
    return false;
  }
  const pair = (await response.json()) as Tokens;
  setTokens(pair);
  return true;
}

/** Refreshes the access token (one refresh at a time, whoever asks). */
export function refreshTokens(): Promise<boolean> {
  refreshing ??= refresh().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function withToken(request: Request): Request {
  const copy = request.clone();
  if (tokens) copy.headers.set("Authorization", `Bearer ${tokens.access_token}`);
  return copy;
}

/** fetch with the access token; one refresh and retry when the token was refused. */
export async function authFetch(input: Request): Promise<Response> {
  const retry = input.clone();
  const response = await fetch(withToken(input));
  const publicCall = new URL(input.url).pathname.startsWith("/auth/login");
  if (response.status === 401 && tokens && !publicCall && (await refreshTokens())) {
    return fetch(withToken(retry));
  }
  return response;
}

export const api = createClient<paths>({ baseUrl: "", fetch: authFetch, querySerializer: { array: { style: "form", explode: true } } });

export async function toApiError(response: Response, body?: unknown): Promise<ApiError> {
  let payload = body;
  if (payload === undefined) {
    try {
      payload = await response.clone().json();
    } catch {
      payload = undefined;
    }
  }
  const error = (payload as { error?: { code?: string; message?: string; request_id?: string; details?: Record<string, unknown> } } | undefined)?.error;
  return new ApiError(
    response.status,
    error?.code ?? `http_${response.status}`,
    error?.message ?? (response.statusText || "the request failed"),
    error?.request_id ?? response.headers.get("x-request-id"),
    error?.details ?? {},
  );
}

/** The data of an openapi-fetch answer, or an ApiError. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result;
  try {
    result = await call;
  } catch (exc) {
    throw new ApiError(0, "network_error", "The server cannot be reached. Check the connection and try again.", null);
  }
  if (!result.response.ok) throw await toApiError(result.response, result.error);
  return result.data as T;
}

function urlOf(path: string, query: Record<string, unknown>): URL {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, String(v)));
    else url.searchParams.set(key, String(value));
  }
  return url;
}

const prefetched = new Map<string, { at: number; answer: Promise<unknown> }>();

/**
 * Starts a GET before the page that needs it is drawn (a cold load of the dashboard asks for its
 * figures while the session is restored, not after): the page's own getJson of the same address
 * within a few seconds takes this answer instead of asking again.
 */
export function prefetchJson(path: string, query: Record<string, unknown> = {}): void {
  const url = urlOf(path, query).toString();
  const answer = fetchJson(new URL(url));
  answer.catch(() => undefined); // an unused refusal is not an unhandled rejection
  prefetched.set(url, { at: Date.now(), answer });
}

/** GET a path the generated types leave open (the contract types such answers loosely). */
export async function getJson<T>(path: string, query: Record<string, unknown> = {}): Promise<T> {
  const url = urlOf(path, query);
  const early = prefetched.get(url.toString());
  if (early) {
    prefetched.delete(url.toString());
    if (Date.now() - early.at < 10_000) return early.answer as Promise<T>;
  }
  return fetchJson<T>(url);
}

async function fetchJson<T>(url: URL): Promise<T> {
  let response: Response;
  try {
    response = await authFetch(new Request(url, { headers: { accept: "application/json" } }));
  } catch {
    throw new ApiError(0, "network_error", "The server cannot be reached. Check the connection and try again.", null);
  }
  if (!response.ok) throw await toApiError(response);
  return (await response.json()) as T;
}

/** Sends JSON to a path; answers the parsed body (or null for 204). */
export async function sendJson<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = { method, headers: { "content-type": "application/json", accept: "application/json", ...headers } };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response: Response;
  try {
    response = await authFetch(new Request(new URL(path, window.location.origin), init));
  } catch {
    throw new ApiError(0, "network_error", "The server cannot be reached. Check the connection and try again.", null);
  }
  if (!response.ok) throw await toApiError(response);
  return (response.status === 204 ? null : await response.json()) as T;
}

/** Downloads a file the API renders (CSV, XLSX, PDF) with the access token, then saves it. */
export async function download(path: string, query: Record<string, unknown>, fallbackName: string): Promise<void> {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, String(v)));
    else url.searchParams.set(key, String(value));
  }
  const response = await authFetch(new Request(url));
  if (!response.ok) throw await toApiError(response);
  const disposition = response.headers.get("content-disposition") ?? "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
