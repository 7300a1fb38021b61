import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, ApiError, getTokens, onTokens, setTokens, toApiError, unwrap } from "../api/client";
import type { components } from "../api/schema";

export type User = components["schemas"]["UserRead"];
export type MfaChallenge = components["schemas"]["MfaChallengeResponse"];
export type MfaEnrolment = components["schemas"]["MfaEnrolment"];
type LoginAnswer = components["schemas"]["LoginResponse"];

const SSO_KEY = "soc.sso";
const NETWORK = "The server cannot be reached. Check the connection and try again.";

/** A sign-in at an identity provider under way: kept across the round trip to the provider. */
interface PendingSso {
  provider: string;
  state: string;
  from: string;
}

/** Begins an SSO sign-in: the browser leaves for the identity provider and comes back to /sso/callback. */
export async function startSso(provider: string, from: string): Promise<void> {
  const answer = await unwrap(api.POST("/auth/oidc/{provider}/start/", { params: { path: { provider } } }));
  sessionStorage.setItem(SSO_KEY, JSON.stringify({ provider, state: answer.state, from } satisfies PendingSso));
  window.location.assign(answer.authorization_url);
}

/** A sign-in challenge's enrolment (the policy requires MFA and the account has none yet). */
export function enrolAtSignIn(challenge: string): Promise<MfaEnrolment> {
  return unwrap(api.POST("/auth/mfa/challenge/enrol/", { body: { challenge } }));
}

export interface Session {
  user: User | null;
  loading: boolean;
  /** Why the last session ended, for the sign-in page ("expired", "signed_out"). */
  endReason: string | null;
  /** Signs in, or answers the second-factor challenge the account needs first. */
  signIn: (username: string, password: string) => Promise<MfaChallenge | null>;
  verifyMfa: (challenge: string, code: string) => Promise<void>;
  /** Finishes an SSO sign-in with the provider's redirect; answers where to go next. */
  completeSso: (query: URLSearchParams) => Promise<string>;
  signOut: () => Promise<void>;
  can: (permission: string) => boolean;
  isAdmin: boolean;
  /** Admins and tenant administrators: audit trail, notification rules, actions on the vendors. */
  isManager: boolean;
  readOnly: boolean;
}

const SessionContext = createContext<Session | null>(null);

const USER_KEY = "soc.user";

/** The signed-in person as last seen (this tab only): a reload draws the page at once with it while
 * /auth/me/ confirms it — the API decides what may be read, this only shapes the menu. */
function storedUser(): User | null {
  if (!getTokens()) return null;
  try {
    const raw = sessionStorage.getItem(USER_KEY);
    return raw ? (JSON.parse(raw) as User) : null;
  } catch {
    return null;
  }
}

function keepUser(user: User | null): void {
  if (user) sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  else sessionStorage.removeItem(USER_KEY);
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUserState] = useState<User | null>(storedUser);
  const [loading, setLoading] = useState(() => getTokens() !== null && storedUser() === null);
  const [endReason, setEndReason] = useState<string | null>(null);
  const setUser = useCallback((next: User | null) => {
    keepUser(next);
    setUserState(next);
  }, []);

  useEffect(() => {
    if (getTokens()) {
      unwrap(api.GET("/auth/me/"))
        .then(setUser)
        .catch(() => setTokens(null, "expired"))
        .finally(() => setLoading(false));
    }
    return onTokens((tokens, reason) => {
      if (!tokens) {
        setUser(null);
        setEndReason(reason ?? null);
      }
    });
  }, [setUser]);

  const accept = useCallback(
    (answer: LoginAnswer) => {
      setTokens(answer);
      setEndReason(null);
      setUser(answer.user);
    },
    [setUser],
  );

  const signIn = useCallback(
    async (username: string, password: string) => {
      let result;
      try {
        result = await api.POST("/auth/login/", { body: { username, password } });
      } catch {
        throw new ApiError(0, "network_error", NETWORK, null);
      }
      if (!result.response.ok || !result.data) throw await toApiError(result.response, result.error);
      if (result.data.mfa_required) return result.data;
      accept(result.data);
      return null;
    },
    [accept],
  );

  const verifyMfa = useCallback(
    async (challenge: string, code: string) => {
      accept(await unwrap(api.POST("/auth/mfa/verify/", { body: { challenge, code } })));
    },
    [accept],
  );

  const completeSso = useCallback(
    async (query: URLSearchParams) => {
      const raw = sessionStorage.getItem(SSO_KEY);
      const pending = raw ? (JSON.parse(raw) as PendingSso) : null;
      const state = query.get("state") ?? "";
      if (query.get("error")) {
        sessionStorage.removeItem(SSO_KEY);
        const reason = query.get("error_description") || query.get("error");
        throw new ApiError(0, "sso_refused", `The identity provider did not sign you in: ${reason}.`, null);
      }
      if (!pending || pending.state !== state || !query.get("code")) {
        throw new ApiError(0, "invalid_state", "This sign-in response does not belong to a sign-in started here. Start again.", null);
      }
      sessionStorage.removeItem(SSO_KEY);
      const answer = await unwrap(
        api.POST("/auth/oidc/{provider}/callback/", {
          params: { path: { provider: pending.provider } },
          body: { code: query.get("code")!, state, iss: query.get("iss") },
        }),
      );
      accept(answer);
      return pending.from || "/";
    },
    [accept],
  );

  const signOut = useCallback(async () => {
    const tokens = getTokens();
    if (tokens) {
      // Revokes the refresh token's family; the session ends here whatever the answer.
      await api.POST("/auth/logout/", { body: { refresh_token: tokens.refresh_token, all_sessions: false } }).catch(() => undefined);
    }
    setTokens(null, "signed_out");
  }, []);

  const value = useMemo<Session>(() => {
    const permissions = new Set(user?.permissions ?? []);
    return {
      user,
      loading,
      endReason,
      signIn,
      verifyMfa,
      completeSso,
      signOut,
      isAdmin: Boolean(user?.is_admin),
      isManager: Boolean(user?.is_admin) || user?.role === "TENANT_ADMIN" || Boolean(user?.roles?.includes("TENANT_ADMIN")),
      readOnly: Boolean(user?.is_read_only),
      // Admins see every company's views; tenant users what their permissions grant.
      can: (permission: string) => Boolean(user?.is_admin) || permissions.has(permission),
    };
  }, [user, loading, endReason, signIn, verifyMfa, completeSso, signOut]);

  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
