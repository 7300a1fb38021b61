// One live socket per signed-in page (`/ws/chat/`): chat messages, in-app notifications and the
// outcomes of the vendor actions the person asked for all arrive on it as frames with a `type`.
// Pages subscribe to the frames they draw instead of opening sockets of their own.
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { getTokens } from "../api/client";
import { useCompany } from "./company";

export type LiveStatus = "connecting" | "live" | "offline";
export type Frame = { type: string } & Record<string, unknown>;
type Listener = (frame: Frame) => void;

interface Live {
  status: LiveStatus;
  subscribe: (type: string, listener: Listener) => () => void;
}

/**
 * True once the page has had `ms` since it was loaded: what the first screen does not draw (unread
 * counts, the live socket) waits, so the first screen's requests have the server to themselves.
 */
export function useAfterFirstScreen(ms = 1500): boolean {
  const [ready, setReady] = useState(() => performance.now() >= ms);
  useEffect(() => {
    if (ready) return;
    const timer = window.setTimeout(() => setReady(true), ms - performance.now());
    return () => window.clearTimeout(timer);
  }, [ready, ms]);
  return ready;
}

const LiveContext = createContext<Live>({ status: "offline", subscribe: () => () => undefined });

/**
 * Opens the socket. The token travels as a subprotocol (browsers cannot set headers on a
 * WebSocket): first `soc.v1` + `access_token.<jwt>` (the server answers `soc.v1`); a gateway that
 * does not know that form refuses it before `hello`, and the socket is reopened with `bearer.<jwt>`.
 */
function openSocket(companyId: string | undefined, onFrame: Listener, onStatus: (s: LiveStatus) => void): () => void {
  let closed = false;
  let socket: WebSocket | null = null;
  let retry: number | undefined;
  const url = () => {
    const u = new URL("/ws/chat/", window.location.href);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    if (companyId) u.searchParams.set("company_id", companyId);
    return u.toString();
  };
  const connect = (legacy: boolean) => {
    const token = getTokens()?.access_token;
    if (!token || closed) return;
    onStatus("connecting");
    let greeted = false;
    socket = new WebSocket(url(), legacy ? [`bearer.${token}`] : ["soc.v1", `access_token.${token}`]);
    socket.onmessage = (event) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(event.data)) as Frame;
      } catch {
        return;
      }
      if (frame.type === "hello") {
        greeted = true;
        onStatus("live");
      }
      onFrame(frame);
    };
    socket.onclose = () => {
      if (closed) return;
      onStatus("offline");
      if (!greeted && !legacy) {
        connect(true);
        return;
      }
      retry = window.setTimeout(() => connect(legacy), 3000);
    };
  };
  connect(false);
  return () => {
    closed = true;
    window.clearTimeout(retry);
    socket?.close();
  };
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const { companyId } = useCompany();
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const listeners = useRef(new Map<string, Set<Listener>>());
  const started = useAfterFirstScreen();
  useEffect(
    () =>
      started
        ? openSocket(
            companyId,
            (frame) => listeners.current.get(frame.type)?.forEach((listener) => listener(frame)),
            setStatus,
          )
        : undefined,
    [companyId, started],
  );
  const subscribe = (type: string, listener: Listener) => {
    const set = listeners.current.get(type) ?? new Set<Listener>();
    set.add(listener);
    listeners.current.set(type, set);
    return () => void set.delete(listener);
  };
  // subscribe only reads the ref: one function for the provider's life.
  const value = useRef<Live>({ status, subscribe });
  value.current = { status, subscribe: value.current.subscribe };
  return <LiveContext.Provider value={{ ...value.current }}>{children}</LiveContext.Provider>;
}

/** The socket's state, for a page that says whether it is live. */
export function useLiveStatus(): LiveStatus {
  return useContext(LiveContext).status;
}

/** Calls `listener` with every frame of `type` while the component is mounted. */
export function useLiveFrames(type: string, listener: Listener): void {
  const { subscribe } = useContext(LiveContext);
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => subscribe(type, (frame) => latest.current(frame)), [type, subscribe]);
}
